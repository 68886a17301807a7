"""Shared Modbus lines: several RTU slaves on one serial line (socat-linked ptys) and
several unit ids behind one RTU-over-TCP gateway, polled by the edge's ModbusDrivers
through one ModbusLine each (simulators/modbus_machine.ModbusLineServer serves them).
Checked: one open port / one TCP connection, every unit's values, a silent unit costing
the others a bounded share of the bus (rates relative to a healthy baseline measured in
the same test), its errors counted, a broken line re-opened once for all its devices."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from services import free_port
from test_edge_integration import Collector, wait_for
from test_edge_modbus_sim import linked_ptys  # noqa: F401 (fixture)

from shopfloor.contract import Sample, State
from shopfloor.edge.agent import Agent
from shopfloor.edge.check import check_all, format_table
from shopfloor.edge.config import EdgeConfig, ModbusDevice
from shopfloor.edge.modbus_driver import ModbusDriver
from shopfloor.edge.modbus_line import ModbusLine, line_key, lines_for
from shopfloor.simulators.machine import Event, Kind
from shopfloor.simulators.modbus_machine import SERIAL_LINE, ModbusLineServer

pytestmark = pytest.mark.timeout(90)

PATH = {"enterprise": "e", "site": "s", "area": "a", "line": "l"}
TAGS = [{"name": "state", "signal": "state", "register": {"address": 0},
         "map": {1: "PRODUCING", 2: "IDLE", 3: "DOWN"}},
        {"name": "part_count", "signal": "part_count",
         "register": {"address": 1, "type": "uint32"}}]
STATES = {1: State.PRODUCING, 2: State.IDLE, 3: State.DOWN}


class Sink:
    """Latest sample per device and tag; every connected() call in order."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[str, Sample]] = {}
        self.events: list[tuple[str, bool]] = []

    def sample(self, device: str, sample: Sample) -> None:
        self.samples.setdefault(device, {})[sample.tag] = sample

    def connected(self, device: str, up: bool, detail: str) -> None:
        self.events.append((device, up))

    def values(self, device: str) -> dict[str, Any]:
        return {t: s.value for t, s in self.samples.get(device, {}).items()}


def rtu_device(unit: int, port: str, **kw: Any) -> ModbusDevice:
    return ModbusDevice.model_validate({
        "id": f"plc-{unit}", "protocol": "modbus", "transport": "rtu", "unit": unit,
        "serial": {"port": port, "baudrate": SERIAL_LINE["baudrate"],
                   "parity": SERIAL_LINE["parity"]},
        "path": PATH, "tags": TAGS, **kw})


def gateway_device(unit: int, port: int, **kw: Any) -> ModbusDevice:
    return ModbusDevice.model_validate({
        "id": f"plc-{unit}", "protocol": "modbus", "transport": "rtu_over_tcp",
        "host": "127.0.0.1", "port": port, "unit": unit, "path": PATH, "tags": TAGS, **kw})


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
        self.lines = lines_for(devices)
        self.by_id = {d.id: ModbusDriver(d, self.sink, 60, self.lines[line_key(d)])
                      for d in devices}
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Drivers:
        self.tasks = [asyncio.create_task(d.run()) for d in self.by_id.values()]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for line in self.lines.values():
            line.close()

    async def until(self, cond: Any, timeout_s: float = 15) -> None:
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
    a, b = rtu_device(1, "/dev/ttyUSB0"), rtu_device(2, "/dev/ttyUSB0")
    c = gateway_device(1, 5020)
    lines = lines_for([a, b, c, gateway_device(2, 5020), gateway_device(3, 5021)])
    assert {k: [d.id for d in line.devices] for k, line in lines.items()} == {
        "rtu:/dev/ttyUSB0": ["plc-1", "plc-2"],
        "rtu_over_tcp:127.0.0.1:5020": ["plc-1", "plc-2"],
        "rtu_over_tcp:127.0.0.1:5021": ["plc-3"]}
    assert lines["rtu:/dev/ttyUSB0"].shared and not lines["rtu_over_tcp:127.0.0.1:5021"].shared
    # Modbus TCP devices at one host:port keep a connection each (one unit per server)
    tcp = [ModbusDevice.model_validate({"id": f"t{i}", "protocol": "modbus", "host": "h",
                                        "unit": i, "path": PATH, "tags": TAGS})
           for i in (1, 2)]
    assert len(lines_for(tcp)) == 2

    base = {"agent_id": "a", "outbox": {"path": "/tmp/x.db"}}
    dump = [d.model_dump(by_alias=True) for d in (a, b)]
    EdgeConfig.model_validate(base | {"devices": dump})
    same_unit = [dump[0], dump[1] | {"unit": 1}]
    with pytest.raises(ValueError, match="unit 1 is already on its line"):
        EdgeConfig.model_validate(base | {"devices": same_unit})
    other_baud = [dump[0], dump[1] | {"serial": dump[1]["serial"] | {"baudrate": 9600}}]
    with pytest.raises(ValueError, match="different line settings"):
        EdgeConfig.model_validate(base | {"devices": other_baud})


def test_three_units_on_one_serial_line_and_a_silent_one(linked_ptys):  # noqa: F811
    asyncio.run(_serial_line(*linked_ptys))


async def _serial_line(plc_port: str, edge_port: str) -> None:
    server = ModbusLineServer([1, 2, 3], serial_port=plc_port)
    await server.start()
    try:
        expected = await load(server)
        devices = [rtu_device(u, edge_port, poll_s=0.1, timeout_s=0.2, reconnect_max_s=1.0)
                   for u in (1, 2, 3)]
        async with Drivers(devices) as drv:
            # (a) every unit read through one open port
            await drv.until(lambda: all(drv.sink.values(i) == expected[i] for i in expected))
            line = drv.lines[f"rtu:{edge_port}"]
            assert open_fds(edge_port) == 1 and line.opens == 1
            assert set(server.requests) == {1, 2, 3}

            # (b) healthy baseline, then unit 3 silent: units 1 and 2 keep polling
            window = 3.0
            rates_ok = await rates(drv, window)
            errors3 = drv.by_id["plc-3"].errors
            asked3 = server.requests[3]
            server.silent.add(3)
            await drv.until(lambda: drv.by_id["plc-3"].errors > errors3)
            rates_silent = await rates(drv, window)
            print(f"\npolls/s healthy {rates_ok}, unit 3 silent {rates_silent}")
            for dev in ("plc-1", "plc-2"):
                assert rates_silent[dev] >= 0.5 * rates_ok[dev], (dev, rates_ok, rates_silent)
            silent = drv.by_id["plc-3"]
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
    finally:
        await server.stop()


async def rates(drv: Drivers, window_s: float) -> dict[str, float]:
    """Polls per second of every device over ``window_s``."""
    p0, t0 = drv.polls(), time.monotonic()
    await asyncio.sleep(window_s)
    p1, dt = drv.polls(), time.monotonic() - t0
    return {i: round((p1[i] - p0[i]) / dt, 2) for i in p0}


def test_two_units_behind_one_rtu_over_tcp_gateway_share_one_connection():
    asyncio.run(_gateway())


async def _gateway() -> None:
    port = free_port()
    server = ModbusLineServer([1, 2], port=port)
    await server.start()
    try:
        expected = await load(server)
        devices = [gateway_device(u, port, poll_s=0.05, timeout_s=0.5, reconnect_max_s=0.5)
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
            await server.start()
            expected = await load(server)
            polls = drv.polls()
            await drv.until(lambda: all(drv.polls()[i] > polls[i] + 3 for i in polls))
            assert server.connections == 1 and line.opens == 2
            assert drv.sink.events[-2:] in ([("plc-1", True), ("plc-2", True)],
                                            [("plc-2", True), ("plc-1", True)])
    finally:
        await server.stop()


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
            "devices": [gateway_device(u, port, timeout_s=0.3).model_dump(by_alias=True)
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


def test_agent_line_loss_is_offline_for_every_device_a_silent_unit_only_for_itself(
        tmp_path, mosquitto):
    asyncio.run(_agent(tmp_path, mosquitto.port))


async def _agent(tmp_path: Path, mqtt_port: int) -> None:
    port = free_port()
    server = ModbusLineServer([1, 2, 3], port=port)
    await server.start()
    await load(server)
    collector = Collector(mqtt_port, "collector-line")
    cfg = EdgeConfig.model_validate({
        "agent_id": "edge-l", "outbox": {"path": str(tmp_path / "ob.db")},
        "mqtt": {"port": mqtt_port}, "publish": {"max_batch_interval_s": 0.05},
        "devices": [gateway_device(u, port, poll_s=0.05, timeout_s=0.3, reconnect_max_s=0.5)
                    .model_dump(by_alias=True) for u in (1, 2, 3)]})
    paths = {d.id: d.device_path for d in cfg.devices}

    def states(dev: str) -> list[str]:
        return [s.value for s in collector.samples(paths[dev]) if s.tag == "state"]

    try:
        async with Agent(cfg):
            await wait_for(lambda: all(states(f"plc-{u}") == [STATES[u].value]
                                       for u in (1, 2, 3)), what="every unit's state")
            server.silent.add(3)  # one unit silent: OFFLINE for it alone
            await wait_for(lambda: "OFFLINE" in states("plc-3"), what="plc-3 OFFLINE")
            await asyncio.sleep(0.5)
            assert states("plc-1") == [STATES[1].value] and states("plc-2") == [
                STATES[2].value]
            await server.stop()  # the gateway gone: OFFLINE for every device on it
            await wait_for(lambda: all("OFFLINE" in states(f"plc-{u}") for u in (1, 2)),
                           what="plc-1 and plc-2 OFFLINE")
            server = ModbusLineServer([1, 2, 3], port=port)
            await server.start()
            await load(server)
            await wait_for(lambda: all(states(f"plc-{u}")[-1] == STATES[u].value
                                       for u in (1, 2, 3)), what="states after the outage")
            assert server.connections == 1
    finally:
        collector.stop()
        await server.stop()
    print({d: states(d) for d in paths})
    assert states("plc-3") == [STATES[3].value, "OFFLINE", STATES[3].value]
    for u in (1, 2):
        assert states(f"plc-{u}") == [STATES[u].value, "OFFLINE", STATES[u].value]


def test_gateway_a_long_silent_unit_does_not_close_the_line_all_silent_does():
    asyncio.run(_long_silence())


async def _long_silence() -> None:
    port = free_port()
    server = ModbusLineServer([1, 2], port=port)
    await server.start()
    try:
        await load(server)
        # unit 1 polled rarely: unit 2's timeouts follow each other with no answer between
        devices = [gateway_device(1, port, poll_s=3, timeout_s=0.1, reconnect_max_s=0.2),
                   gateway_device(2, port, poll_s=0.05, timeout_s=0.1, reconnect_max_s=0.2)]
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
