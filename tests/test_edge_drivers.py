"""Edge drivers against real servers on loopback: OPC UA reconnect after a server restart,
a silent Modbus device does not stall a healthy one, and `shopfloor edge` stops cleanly
on SIGTERM with an explicit death message."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest
import yaml
from services import free_port
from test_edge_integration import ModbusMachine, OpcUaMachine, wait_for

from shopfloor.contract import DevicePath, Sample
from shopfloor.demo.configs import edge_config_from_scenario
from shopfloor.edge.config import EdgeConfig
from shopfloor.edge.modbus.driver import ModbusDriver
from shopfloor.edge.opcua.driver import OpcUaDriver

pytestmark = pytest.mark.timeout(60)


class ListSink:
    def __init__(self) -> None:
        self.samples: list[tuple[str, Sample]] = []
        self.events: list[tuple[str, bool]] = []

    def sample(self, device: str, sample: Sample) -> None:
        self.samples.append((device, sample))

    def connected(self, device: str, up: bool, detail: str, since_ns: int) -> None:
        self.events.append((device, up))

    def values(self, device: str, tag: str) -> list:
        return [s.value for d, s in self.samples if d == device and s.tag == tag]


def _config(machines: list[dict], mqtt_port: int = 1883,
            outbox: str = "/nonexistent") -> EdgeConfig:
    scenario = {"enterprise": {"id": "acme"}, "site": {"id": "plant1"},
                "areas": [{"id": "a", "lines": [{"id": "l", "machines": machines}]}]}
    raw = edge_config_from_scenario(scenario, agent_id="edge-d", mqtt={"port": mqtt_port},
                                    outbox_path=outbox)
    for dev in raw["devices"]:
        dev["timeout_s"] = 0.5
        dev["reconnect_max_s"] = 1.0
    return EdgeConfig.model_validate(raw)


def test_opcua_driver_resubscribes_after_server_restart():
    asyncio.run(_opcua_restart())


async def _opcua_restart():
    port = free_port()
    cfg = _config([{"id": "cnc-01", "protocol": "opcua", "port": port}])
    sink = ListSink()
    server = OpcUaMachine(port)
    await server.start()
    driver = OpcUaDriver(cfg.devices[0], sink, heartbeat_s=30)
    task = asyncio.create_task(driver.run())
    try:
        t0 = time.time_ns() // 1000 * 1000
        await server.write("State", 3, t0)
        await wait_for(lambda: "DOWN" in sink.values("cnc-01", "state"), what="first change")
        # queue_size > 1: quick successive changes are all delivered, none coalesced
        for i in range(1, 11):
            await server.write("PartCount", i, t0 + i * 1000)
        await wait_for(lambda: 10 in sink.values("cnc-01", "part_count"), what="burst")
        assert sink.values("cnc-01", "part_count")[-10:] == list(range(1, 11))

        await server.stop()
        await wait_for(lambda: ("cnc-01", False) in sink.events, what="loss detected")
        server = OpcUaMachine(port)  # a fresh server: new session and subscription needed
        await server.start()
        await wait_for(lambda: sink.events.count(("cnc-01", True)) >= 2, timeout=20,
                       what="reconnect")
        await server.write("State", 1, time.time_ns() // 1000 * 1000)
        await wait_for(lambda: "PRODUCING" in sink.values("cnc-01", "state"),
                       what="change after reconnect")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


class GoSilentProxy:
    """A TCP proxy in front of a Modbus server that can stop answering: once ``silent``,
    it accepts connections and requests and never answers (every read times out)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.silent = False
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(4096):
                if not self.silent:
                    dst.write(data)
                    await dst.drain()

        try:
            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            up_w.close()
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


def test_silent_modbus_device_does_not_stall_others():
    asyncio.run(_silent_modbus())


async def _poll_window(drivers: dict[str, ModbusDriver], seconds: float
                       ) -> tuple[dict[str, int], float]:
    """Polls completed by each driver within a window, and the window's real length."""
    before = {k: d.polls for k, d in drivers.items()}
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - t0
    return {k: d.polls - before[k] for k, d in drivers.items()}, elapsed


async def _silent_modbus():
    # Two healthy slaves; then one of them (behind a proxy) stops answering.
    other = ModbusMachine(free_port())
    await other.start()
    proxy = GoSilentProxy(other.port)
    await proxy.start()
    good = ModbusMachine(free_port())
    await good.start()
    await good.set(1, 0, 0, 1.0)
    cfg = _config([{"id": "dead-01", "protocol": "modbus", "port": proxy.port},
                   {"id": "press-01", "protocol": "modbus", "port": good.port}])
    poll_s = cfg.devices[1].poll_s
    sink = ListSink()
    drivers = {d.id: ModbusDriver(d, sink, heartbeat_s=30) for d in cfg.devices}
    tasks = [asyncio.create_task(d.run()) for d in drivers.values()]
    try:
        await wait_for(lambda: all(d.polls > 0 for d in drivers.values()), what="first polls")
        healthy, t_healthy = await _poll_window(drivers, 3.0)
        assert healthy["dead-01"] > 0  # both answering

        proxy.silent = True
        errors_before = drivers["dead-01"].errors
        values_before = len(sink.values("press-01", "part_count"))
        await wait_for(lambda: drivers["dead-01"].errors > errors_before, what="first timeout")
        changer = asyncio.create_task(_count_up(good))
        faulty, t_faulty = await _poll_window(drivers, 3.0)
        await changer

        rate_healthy = healthy["press-01"] / t_healthy
        rate_faulty = faulty["press-01"] / t_faulty
        print(f"\npress-01 polls: {healthy['press-01']} in {t_healthy:.2f}s with both "
              f"healthy, {faulty['press-01']} in {t_faulty:.2f}s with dead-01 silent "
              f"(ratio {rate_faulty / rate_healthy:.2f}; nominal {1 / poll_s:.0f}/s); "
              f"dead-01: {faulty['dead-01']} polls, "
              f"{drivers['dead-01'].errors - errors_before} errors")
        # the healthy slave keeps its poll rate while the other one times out (the two
        # rates are measured side by side; the floor only says the baseline is polling)
        assert rate_healthy >= 0.25 / poll_s
        assert rate_faulty >= 0.7 * rate_healthy
        # the fault is real: the silent slave completed no poll and kept timing out
        assert faulty["dead-01"] == 0
        assert drivers["dead-01"].errors - errors_before >= 2
        assert ("dead-01", False) in sink.events
        # and the healthy slave's data keeps flowing: every change seen, each once
        counts = sink.values("press-01", "part_count")
        assert counts[values_before:][-15:] == list(range(1, 16))
        assert counts == sorted(set(counts))  # report by exception: each value once
        assert sink.values("press-01", "state") == ["PRODUCING"]  # unchanged: not repeated
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await proxy.stop()
        await good.stop()
        await other.stop()


async def _count_up(machine: ModbusMachine) -> None:
    """15 part-count changes, 150 ms apart (3 poll periods): each must be seen."""
    for i in range(1, 16):
        await machine.set(1, i, 0, 1.0)
        await asyncio.sleep(0.15)


def test_cli_stops_cleanly_on_sigterm(tmp_path, mosquitto):
    press = DevicePath("acme", "plant1", "a", "l", "press-01")
    cfg = _config([{"id": "press-01", "protocol": "modbus", "port": free_port()}],
                  mqtt_port=mosquitto.port, outbox=str(tmp_path / "ob.sqlite"))
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True)))
    status: list[dict] = []
    online = threading.Event()

    def on_message(client, userdata, msg) -> None:
        status.append(json.loads(msg.payload))
        if status[-1].get("reason", "device: not read yet") != "device: not read yet":
            online.set()  # online false: the device cannot be reached (after the birth:
            # not read yet; stopped before the device was tried, nothing says disconnected)

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watch")
    sub.on_message = on_message
    sub.on_connect = lambda c, *_: c.subscribe(press.topic("status"), 1)
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    proc = subprocess.Popen([sys.executable, "-m", "shopfloor", "edge", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert online.wait(20), "no status saying the device cannot be reached"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out.decode()
        deadline = time.monotonic() + 5
        while status[-1].get("reason") != "agent stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status[-1] == {"v": 1, "online": False, "agent": "edge-d",  # not the will
                              "ts": status[-1]["ts"], "reason": "agent stopped"}
        assert status[0]["online"] is False and status[0]["reason"].startswith("device: ")
        log = out.decode()
        assert "device disconnected" in log and "stats:" in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sub.loop_stop()
        sub.disconnect()
