"""Edge drivers against real servers on loopback: OPC UA reconnect after a server restart,
a silent Modbus device does not stall a healthy one, and `shopfloor edge` stops cleanly
on SIGTERM with an explicit death message."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
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
from shopfloor.edge.config import EdgeConfig
from shopfloor.edge.from_scenario import edge_config_from_scenario
from shopfloor.edge.modbus_driver import ModbusDriver
from shopfloor.edge.opcua_driver import OpcUaDriver

pytestmark = pytest.mark.timeout(60)


class ListSink:
    def __init__(self) -> None:
        self.samples: list[tuple[str, Sample]] = []
        self.events: list[tuple[str, bool]] = []

    def sample(self, device: str, sample: Sample) -> None:
        self.samples.append((device, sample))

    def connected(self, device: str, up: bool, detail: str) -> None:
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


def test_silent_modbus_device_does_not_stall_others():
    asyncio.run(_silent_modbus())


async def _silent_modbus():
    # A TCP peer that accepts and never answers: every read times out.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    good = ModbusMachine(free_port())
    await good.start()
    cfg = _config([{"id": "dead-01", "protocol": "modbus", "port": silent.getsockname()[1]},
                   {"id": "press-01", "protocol": "modbus", "port": good.port}])
    sink = ListSink()
    tasks = [asyncio.create_task(ModbusDriver(d, sink, heartbeat_s=30).run())
             for d in cfg.devices]
    try:
        for i in range(15):
            await good.set(1, i, 0, 1.0)
            await asyncio.sleep(0.1)
        await wait_for(lambda: 14 in sink.values("press-01", "part_count"), what="press")
        counts = sink.values("press-01", "part_count")
        assert counts == sorted(set(counts))  # report by exception: each value once
        assert len(counts) >= 10  # polled every 50 ms while the other device hangs (0.5 s timeouts)
        assert sink.values("press-01", "state") == ["PRODUCING"]  # unchanged: not repeated
        assert not [s for d, s in sink.samples if d == "dead-01"]
        assert ("dead-01", False) in sink.events
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await good.stop()
        silent.close()


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
        if status[-1]["online"]:
            online.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watch")
    sub.on_message = on_message
    sub.on_connect = lambda c, *_: c.subscribe(press.topic("status"), 1)
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    proc = subprocess.Popen([sys.executable, "-m", "shopfloor", "edge", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert online.wait(20), "no birth message"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out.decode()
        deadline = time.monotonic() + 5
        while status[-1]["online"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status[-1] == {"v": 1, "online": False, "agent": "edge-d",
                              "ts": status[-1]["ts"]}
        log = out.decode()
        assert "device disconnected" in log and "stats:" in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sub.loop_stop()
        sub.disconnect()
