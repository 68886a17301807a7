"""Shared Modbus lines: several RTU slaves on one serial line (socat-linked ptys), several
unit ids behind one RTU-over-TCP gateway (simulators/modbus_machine.ModbusLineServer)
and behind one Modbus TCP gateway (the independent peer: npm modbus-serial's ServerTCP,
every unit id with its own registers), polled by the edge's ModbusDrivers through one
ModbusLine each. Checked: one open port / one TCP connection, every unit's values, a
silent unit costing the others a bounded share of the bus and going OFFLINE alone, a
broken line OFFLINE (bad) for every device on it and re-opened once for all, and a
driver's cancel never lost (Python 3.11's wait_for, see edge/driver.raise_if_cancelled).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from peers import ModbusPeer
from services import free_port
from test_edge_integration import Collector, wait_for
from test_edge_modbus_sim import linked_ptys  # noqa: F401 (fixture)

from shopfloor.contract import Sample, State
from shopfloor.edge.agent import Agent
from shopfloor.edge.check import check_all, format_table
from shopfloor.edge.config import EdgeConfig, ModbusDevice
from shopfloor.edge.modbus.driver import modbus_drivers
from shopfloor.edge.modbus.line import ModbusLine
from shopfloor.simulators.machine import Event, Kind
from shopfloor.simulators.modbus_machine import SERIAL_LINE, ModbusLineServer

pytestmark = pytest.mark.timeout(120)

PATH = {"enterprise": "e", "site": "s", "area": "a", "line": "l"}
TAGS = [{"name": "state", "signal": "state", "register": {"address": 0},
         "map": {1: "PRODUCING", 2: "IDLE", 3: "DOWN"}},
        {"name": "part_count", "signal": "part_count",
         "register": {"address": 1, "type": "uint32"}}]
STATES = {1: State.PRODUCING, 2: State.IDLE, 3: State.DOWN}
CODES = {State.PRODUCING: 1, State.IDLE: 2, State.DOWN: 3}
PRESET = {u: [CODES[STATES[u]], 0, 1000 * u + 7] for u in STATES}  # state, part count


class Sink:
    """Latest sample per device and tag; every connected() call in order."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[str, Sample]] = {}
        self.events: list[tuple[str, bool]] = []

    def sample(self, device: str, sample: Sample) -> None:
        self.samples.setdefault(device, {})[sample.tag] = sample

    def connected(self, device: str, up: bool, detail: str, since_ns: int) -> None:
        self.events.append((device, up))

    def values(self, device: str) -> dict[str, Any]:
        return {t: s.value for t, s in self.samples.get(device, {}).items()}


def device(unit: int, *, port: int = 0, serial: str | None = None,
           transport: str = "rtu_over_tcp", **kw: Any) -> ModbusDevice:
    where: dict[str, Any] = (
        {"transport": "rtu", "serial": {"port": serial, "baudrate": SERIAL_LINE["baudrate"],
                                        "parity": SERIAL_LINE["parity"]}}
        if serial else {"transport": transport, "host": "127.0.0.1", "port": port})
    return ModbusDevice.model_validate({"id": f"plc-{unit}", "protocol": "modbus",
                                        "unit": unit, "path": PATH, "tags": TAGS,
                                        **where, **kw})


async def load(server: ModbusLineServer) -> dict[str, dict[str, Any]]:
    """Each unit its own state and count; returns what each device should read."""
    expected = {}
    for unit in server.units:
        await server.apply(unit, Event(0, Kind.STATE, STATES[unit], 0, 0, 50.0))
        await server.apply(unit, Event(1, Kind.PART, STATES[unit], 1000 * unit + 7, 0, 50.0,
                                       True))
        expected[f"plc-{unit}"] = {"state": STATES[unit].value, "part_count": 1000 * unit + 7}
    return expected


class Drivers:
    """The devices' drivers on their shared lines, running as tasks."""

    def __init__(self, devices: list[ModbusDevice]):
        self.sink = Sink()
        self.by_id = {d.device.id: d for d in modbus_drivers(devices, self.sink, 60)}
        self.lines = {d.line.key: d.line for d in self.by_id.values()}
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Drivers:
        self.tasks = [asyncio.create_task(d.run()) for d in self.by_id.values()]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self.tasks:
            t.cancel()
        _, stuck = await asyncio.wait(self.tasks, timeout=5)
        assert not stuck, f"drivers did not stop within 5 s of their cancel: {stuck}"
        assert all(line.client is None for line in self.lines.values())  # closed by the last

    async def until(self, cond: Any, timeout_s: float = 20) -> None:
        async with asyncio.timeout(timeout_s):
            while not cond():
                await asyncio.sleep(0.01)

    def polls(self) -> dict[str, int]:
        return {i: d.polls for i, d in self.by_id.items()}


def open_fds(path: str) -> int:
    """How many of this process's file descriptors are open on ``path`` (a pty)."""
    target = os.path.realpath(path)
    n = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            n += os.path.realpath(fd.readlink()) == target
        except OSError:
            pass
    return n


def test_shared_lines_are_grouped_and_validated():
    a, b = device(1, serial="/dev/ttyUSB0"), device(2, serial="/dev/ttyUSB0")
    devices = [a, b, device(1, port=5020), device(2, port=5020), device(3, port=5021),
               device(4, port=502, transport="tcp"), device(5, port=502, transport="tcp")]
    lines: dict[str, list[int]] = {}
    for d in modbus_drivers(devices, Sink(), 60):
        lines.setdefault(d.line.key, []).append(d.device.unit)
        assert d.line.shared == (len(d.line.devices) > 1)
    assert lines == {"rtu:/dev/ttyUSB0": [1, 2], "rtu_over_tcp:127.0.0.1:5020": [1, 2],
                     "rtu_over_tcp:127.0.0.1:5021": [3], "tcp:127.0.0.1:502": [4, 5]}

    base = {"agent_id": "a", "outbox": {"path": "/tmp/x.db"}}
    dump = [d.model_dump(by_alias=True) for d in (a, b)]
    EdgeConfig.model_validate(base | {"devices": dump})
    same_unit = [dump[0], dump[1] | {"unit": 1}]
    with pytest.raises(ValueError, match="unit 1 is already on its line"):
        EdgeConfig.model_validate(base | {"devices": same_unit})
    other_baud = [dump[0], dump[1] | {"serial": dump[1]["serial"] | {"baudrate": 9600}}]
    with pytest.raises(ValueError, match="different line settings"):
        EdgeConfig.model_validate(base | {"devices": other_baud})
    # a Modbus TCP server may be one PLC read as two devices (same unit, other poll_s)
    tcp = [device(1, port=502, transport="tcp").model_dump(by_alias=True)]
    tcp.append(tcp[0] | {"id": "plc-1-slow", "poll_s": 5})
    EdgeConfig.model_validate(base | {"devices": tcp})
    mixed = [tcp[0], device(2, port=502).model_dump(by_alias=True)]
    with pytest.raises(ValueError, match="is used with transports tcp and rtu_over_tcp"):
        EdgeConfig.model_validate(base | {"devices": mixed})


async def rates(drv: Drivers, window_s: float) -> dict[str, float]:
    """Polls per second of every device over ``window_s``."""
    p0, t0 = drv.polls(), time.monotonic()
    await asyncio.sleep(window_s)
    p1, dt = drv.polls(), time.monotonic() - t0
    return {i: round((p1[i] - p0[i]) / dt, 2) for i in p0}


def test_three_units_on_one_serial_line_and_a_silent_one(linked_ptys):  # noqa: F811
    asyncio.run(_serial_line(*linked_ptys))


async def _serial_line(plc_port: str, edge_port: str) -> None:
    server = ModbusLineServer([1, 2, 3], serial_port=plc_port)
    await server.start()
    try:
        expected = await load(server)
        devices = [device(u, serial=edge_port, poll_s=0.1, timeout_s=0.2, reconnect_max_s=1.0)
                   for u in (1, 2, 3)]
        async with Drivers(devices) as drv:
            # every unit read through one open port
            await drv.until(lambda: all(drv.sink.values(i) == expected[i] for i in expected))
            line = drv.lines[f"rtu:{edge_port}"]
            assert open_fds(edge_port) == 1 and line.opens == 1
            assert set(server.requests) == {1, 2, 3}

            # healthy baseline, then unit 3 silent: units 1 and 2 keep polling
            window = 3.0
            rates_ok = await rates(drv, window)
            silent = drv.by_id["plc-3"]
            errors3, asked3 = silent.errors, server.requests[3]
            server.silent.add(3)
            await drv.until(lambda: silent.errors > errors3)
            rates_silent = await rates(drv, window)
            print(f"\npolls/s healthy {rates_ok}, unit 3 silent {rates_silent}")
            for dev in ("plc-1", "plc-2"):
                # a silent unit costs the line its timeout (0.2 s) per try, backed off
                assert rates_silent[dev] >= 0.5 * rates_ok[dev], (dev, rates_ok, rates_silent)
            print(f"unit 3: {silent.errors - errors3} errors, "
                  f"{server.requests[3] - asked3} requests while silent")
            assert silent.errors - errors3 >= 2 and server.requests[3] - asked3 >= 2
            assert rates_silent["plc-3"] == 0
            # the unit's timeout is its own failure: its device down, the others not, the
            # line never closed
            downs = Counter(d for d, up in drv.sink.events if not up)
            assert downs["plc-3"] >= 1 and downs["plc-1"] == downs["plc-2"] == 0
            assert line.opens == 1 and open_fds(edge_port) == 1

            # the unit answers again: it is polled again (after its backoff, <= 1 s)
            server.silent.clear()
            before = silent.polls
            await drv.until(lambda: silent.polls > before + 2)
            assert drv.sink.events[-1] == ("plc-3", True)
        assert open_fds(edge_port) == 0  # the last driver to stop closed the line
    finally:
        await server.stop()


def test_two_units_behind_one_rtu_over_tcp_gateway_share_one_connection():
    asyncio.run(_gateway())


async def _gateway() -> None:
    port = free_port()
    server = ModbusLineServer([1, 2], port=port)
    await server.start()
    try:
        expected = await load(server)
        devices = [device(u, port=port, poll_s=0.05, timeout_s=0.5, reconnect_max_s=0.5)
                   for u in (1, 2)]
        async with Drivers(devices) as drv:
            await drv.until(lambda: all(drv.sink.values(i) == expected[i] for i in expected)
                            and min(drv.polls().values()) >= 5)
            line: ModbusLine = drv.lines[f"rtu_over_tcp:127.0.0.1:{port}"]
            assert server.connections == 1 and line.opens == 1
            assert server.requests[1] >= 5 and server.requests[2] >= 5

            # the gateway goes away: both devices down; back: the line re-opens once
            await server.stop()
            await drv.until(lambda: {d for d, up in drv.sink.events if not up}
                            == {"plc-1", "plc-2"})
            server = ModbusLineServer([1, 2], port=port)
            expected = await load(server)
            await server.start()
            polls = drv.polls()
            await drv.until(lambda: all(drv.polls()[i] > polls[i] + 3 for i in polls))
            assert server.connections == 1 and line.opens == 2
            assert sorted(drv.sink.events[-2:]) == [("plc-1", True), ("plc-2", True)]
    finally:
        await server.stop()


def test_gateway_a_long_silent_unit_does_not_close_the_line_all_silent_does():
    asyncio.run(_long_silence())


async def _long_silence() -> None:
    port = free_port()
    server = ModbusLineServer([1, 2], port=port)
    await server.start()
    try:
        await load(server)
        # unit 1 polled rarely: unit 2's timeouts follow each other with no answer between
        # (pymodbus alone would close the connection after 3 of them)
        devices = [device(1, port=port, poll_s=3, timeout_s=0.1, reconnect_max_s=0.2),
                   device(2, port=port, poll_s=0.05, timeout_s=0.1, reconnect_max_s=0.2)]
        async with Drivers(devices) as drv:
            line = drv.lines[f"rtu_over_tcp:127.0.0.1:{port}"]
            await drv.until(lambda: min(drv.polls().values()) >= 1)
            server.silent.add(2)
            await drv.until(lambda: drv.by_id["plc-2"].errors >= 10)
            assert line.opens == 1 and server.connections == 1
            assert ("plc-1", False) not in drv.sink.events
            # every unit silent (a half-open gateway): the line is re-opened
            server.silent.add(1)
            await drv.until(lambda: line.opens >= 2)
            assert server.connections >= 2
    finally:
        await server.stop()


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 4])
def test_a_cancel_just_after_an_answer_stops_the_driver(depth):
    """The hang of the first shared-lines agent test: a cancel arriving a loop iteration
    or three after a Modbus answer was swallowed by Python 3.11's ``wait_for`` (pymodbus's
    and ours), the driver polled on and the agent's stop waited for it for ever. Here the
    cancel is delivered ``depth`` iterations after the answer, every time."""
    asyncio.run(_cancel_after_answer(depth))


async def _cancel_after_answer(depth: int, rounds: int = 10) -> None:
    port = free_port()
    server = ModbusLineServer([1, 2], port=port)
    await server.start()
    try:
        for _ in range(rounds):
            await _cancel_round(port, depth)
    finally:
        await server.stop()


async def _cancel_round(port: int, depth: int) -> None:
    drivers = modbus_drivers([device(u, port=port, poll_s=0.01) for u in (1, 2)], Sink(), 60)
    tasks = [asyncio.create_task(d.run()) for d in drivers]
    line = drivers[0].line
    async with asyncio.timeout(10):
        while not all(d.polls for d in drivers):
            await asyncio.sleep(0.01)
    assert line.client is not None
    ctx = line.client.ctx
    answered = ctx.data_received
    loop = asyncio.get_running_loop()

    def cancel_later(k: int) -> None:
        if k:
            loop.call_soon(cancel_later, k - 1)
        else:
            for t in tasks:
                t.cancel()

    def hooked(data: bytes) -> None:  # the next answer, then the cancel
        answered(data)
        ctx.data_received = answered
        cancel_later(depth)

    ctx.data_received = hooked
    _, stuck = await asyncio.wait(tasks, timeout=5)
    assert not stuck, f"depth {depth}: a driver did not stop on its cancel"
    assert all(t.cancelled() for t in tasks)
    assert line.client is None


def test_edge_check_tries_every_unit_of_a_shared_line_over_one_connection(tmp_path):
    asyncio.run(_check(tmp_path))


async def _check(tmp_path: Path) -> None:
    port = free_port()
    server = ModbusLineServer([1, 2, 3], port=port)
    server.silent.add(2)
    await server.start()
    try:
        await load(server)
        cfg = EdgeConfig.model_validate({
            "agent_id": "a", "outbox": {"path": str(tmp_path / "ob.db")},
            "mqtt": {"host": "127.0.0.1", "port": free_port()},  # no broker: its row fails
            "devices": [device(u, port=port, timeout_s=0.3).model_dump(by_alias=True)
                        for u in (3, 2, 1)]})
        table = await check_all(cfg)
    finally:
        await server.stop()
    print("\n" + format_table(table))
    got = {r.name: (r.reachable, r.tags_read, bool(r.error)) for r in table}
    assert [r.name for r in table] == ["plc-3", "plc-2", "plc-1", "broker"]  # config order
    assert got["plc-1"] == got["plc-3"] == (True, 2, False)
    assert got["plc-2"] == (False, 0, True)  # the silent unit: no answer
    assert server.connections == 1 and server.requests[2] >= 1


def agent_config(tmp_path: Path, mqtt_port: int, devices: list[ModbusDevice]) -> EdgeConfig:
    return EdgeConfig.model_validate({
        "agent_id": "edge-l", "outbox": {"path": str(tmp_path / "ob.db")},
        "mqtt": {"port": mqtt_port}, "publish": {"max_batch_interval_s": 0.05},
        "devices": [d.model_dump(by_alias=True) for d in devices]})


class Published:
    """What the collector received per device: states, and samples by quality."""

    def __init__(self, collector: Collector, cfg: EdgeConfig):
        self.collector = collector
        self.paths = {d.id: d.device_path for d in cfg.devices}

    def states(self, dev: str) -> list[str]:
        return [s.value for s in self.collector.samples(self.paths[dev]) if s.tag == "state"]

    def bad(self, dev: str) -> set[str]:
        """Tags published bad."""
        return {s.tag for s in self.collector.samples(self.paths[dev]) if s.quality == "bad"}


def test_agent_line_loss_is_offline_for_every_device_a_silent_unit_only_for_itself(
        tmp_path, mosquitto, caplog):
    caplog.set_level(logging.ERROR, logger="shopfloor.edge.agent")
    seen = asyncio.run(_agent(tmp_path, mosquitto.port))
    print(seen)
    for u in (1, 2, 3):  # before the stop: read, lost, read again
        assert seen[f"plc-{u}"] == [STATES[u].value, "OFFLINE", STATES[u].value]
    assert "did not stop" not in caplog.text


async def _agent(tmp_path: Path, mqtt_port: int) -> dict[str, list[str]]:
    port = free_port()
    server = ModbusLineServer([1, 2, 3], port=port)
    await load(server)
    await server.start()
    collector = Collector(mqtt_port, "collector-line")
    cfg = agent_config(tmp_path, mqtt_port, [
        device(u, port=port, poll_s=0.05, timeout_s=0.5, reconnect_max_s=0.5)
        for u in (1, 2, 3)])
    pub = Published(collector, cfg)
    try:
        async with Agent(cfg):
            await wait_for(lambda: all(pub.states(f"plc-{u}") == [STATES[u].value]
                                       for u in (1, 2, 3)), what="every unit's state")
            server.silent.add(3)  # one unit silent: OFFLINE (every tag bad) for it alone
            await wait_for(lambda: pub.bad("plc-3") == {"state", "part_count"},
                           what="plc-3 OFFLINE")
            await asyncio.sleep(1.0)  # two timeouts of the silent unit
            assert pub.bad("plc-1") == pub.bad("plc-2") == set()
            await server.stop()  # the gateway gone: OFFLINE for every device on it
            await wait_for(lambda: all(pub.bad(f"plc-{u}") == {"state", "part_count"}
                                       for u in (1, 2)), what="plc-1 and plc-2 OFFLINE")
            server = ModbusLineServer([1, 2, 3], port=port)
            await load(server)
            await server.start()
            await wait_for(lambda: all(pub.states(f"plc-{u}")[-1] == STATES[u].value
                                       for u in (1, 2, 3)), what="states after the outage")
            assert server.connections == 1  # one connection for the three units, again
            seen = {d: pub.states(d) for d in pub.paths}
        return seen
    finally:
        collector.stop()
        await server.stop()


def test_agent_several_units_behind_one_modbus_tcp_port_of_an_independent_peer(
        tmp_path, mosquitto, caplog):
    """npm modbus-serial's ServerTCP, units 1-3 each with its own registers behind one
    port: one connection, every unit its own values; a silent unit OFFLINE alone; the
    peer killed, every unit OFFLINE; started again, every unit back over one connection.
    (jsmodbus cannot be this peer: its TCP server answers every unit id from one table.)"""
    caplog.set_level(logging.ERROR, logger="shopfloor.edge.agent")
    port = free_port()
    peer = ModbusPeer(tmp_path / "peer", units=[1, 2, 3], port=port, preset=PRESET)
    try:
        seen, connections = asyncio.run(_peer_agent(tmp_path, mosquitto.port, peer))
    finally:
        peer.close()
    print(seen, connections)
    for u in (1, 2, 3):
        assert seen[f"plc-{u}"] == [STATES[u].value, "OFFLINE", STATES[u].value]
    assert connections == (1, 1)  # before the kill, and by the second peer
    assert "did not stop" not in caplog.text


async def _peer_agent(tmp_path: Path, mqtt_port: int,
                      peer: ModbusPeer) -> tuple[dict[str, list[str]], tuple[int, int]]:
    collector = Collector(mqtt_port, "collector-peer")
    cfg = agent_config(tmp_path, mqtt_port, [
        device(u, port=peer.port, transport="tcp", poll_s=0.05, timeout_s=0.5,
               reconnect_max_s=0.5) for u in (1, 2, 3)])
    pub = Published(collector, cfg)
    second: ModbusPeer | None = None
    try:
        async with Agent(cfg):
            await wait_for(lambda: all(pub.states(f"plc-{u}") == [STATES[u].value]
                                       for u in (1, 2, 3)), what="every unit's state")
            counts = [await asyncio.to_thread(peer.connections)]
            await asyncio.to_thread(peer.silent, [2])
            await wait_for(lambda: pub.bad("plc-2") == {"state", "part_count"},
                           what="plc-2 OFFLINE")
            await asyncio.sleep(1.0)  # two timeouts of the silent unit
            assert pub.bad("plc-1") == pub.bad("plc-3") == set()
            await asyncio.to_thread(peer.kill)
            await wait_for(lambda: all(pub.bad(f"plc-{u}") == {"state", "part_count"}
                                       for u in (1, 3)), what="plc-1 and plc-3 OFFLINE")
            second = await asyncio.to_thread(ModbusPeer, tmp_path / "peer2", units=[1, 2, 3],
                                             port=peer.port, preset=PRESET)
            await wait_for(lambda: all(pub.states(f"plc-{u}")[-1] == STATES[u].value
                                       for u in (1, 2, 3)), what="states after the outage")
            counts.append(await asyncio.to_thread(second.connections))
            seen = {d: pub.states(d) for d in pub.paths}
        return seen, (counts[0], counts[1])
    finally:
        collector.stop()
        if second is not None:
            await asyncio.to_thread(second.close)
