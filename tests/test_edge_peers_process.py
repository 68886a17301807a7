"""`shopfloor edge` as a process against independent servers (node-opcua, npm
modbus-serial) and real Mosquitto: device loss is one log line per device (no library
tracebacks), visible for every tag and in the retained status; a hung PLC's reconnects
back off; a last will carries no start time as its death time; the agent's own downtime
(SIGKILL, restart) is marked OFFLINE from when it was last alive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from peers import ModbusPeer, NodeOpcUa
from test_edge_integration import Collector, retained

from shopfloor.contract import DevicePath, Quality, Sample

pytestmark = pytest.mark.timeout(240)

PATH = {"enterprise": "e", "site": "s", "area": "a", "line": "l"}
OPC, PLC = DevicePath("e", "s", "a", "l", "cnc"), DevicePath("e", "s", "a", "l", "plc")
STATES = {1: "PRODUCING", 2: "IDLE"}


def wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def write_config(tmp_path: Path, mqtt_port: int, opc: NodeOpcUa, plc: ModbusPeer) -> Path:
    cfg = {
        "agent_id": "edge-proc", "mqtt": {"port": mqtt_port, "keepalive_s": 5},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "publish": {"max_batch_interval_s": 0.05, "heartbeat_s": 1},
        "devices": [
            {"id": "cnc", "protocol": "opcua", "path": PATH, "endpoint": opc.url,
             "sampling_interval_ms": 20, "timeout_s": 2, "reconnect_max_s": 0.5,
             "tags": [{"name": "State", "signal": "state", "node": opc.node("State"),
                       "map": STATES},
                      {"name": "PartCount", "signal": "part_count",
                       "node": opc.node("PartCount")}]},
            {"id": "plc", "protocol": "modbus", "path": PATH, "host": "127.0.0.1",
             "port": plc.port, "poll_s": 0.05, "timeout_s": 0.3, "reconnect_max_s": 8,
             "tags": [{"name": "state", "signal": "state", "map": STATES,
                       "register": {"address": 0}},
                      {"name": "parts", "signal": "part_count",
                       "register": {"address": 1, "type": "uint32"}}]}]}
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def agent(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shopfloor", "edge", "--config",
                             str(config)], stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def states(collector: Collector, dev: DevicePath) -> list[Sample]:
    """The device's state samples by timestamp (as a store keeps them)."""
    return sorted((s for s in collector.samples(dev) if s.tag == "state"), key=lambda s: s.ts)


def test_device_loss_logs_and_marks_and_the_agents_own_downtime(tmp_path, mosquitto):
    opc_vars = [{"name": "State", "type": "Int32", "value": 1},
                {"name": "PartCount", "type": "UInt32", "value": 7}]
    opc = NodeOpcUa(tmp_path / "opc", opc_vars)
    plc = ModbusPeer(tmp_path / "plc")
    plc.write(0, [1, 0, 9])
    collector = Collector(mosquitto.port)
    config = write_config(tmp_path, mosquitto.port, opc, plc)
    log1, log2 = tmp_path / "run1.log", tmp_path / "run2.log"
    proc = agent(config, log1)
    try:
        wait(lambda: all(states(collector, d) for d in (OPC, PLC)), 60, "both states")
        # both devices lost: the OPC UA server killed, the PLC hung (TCP open, no answers)
        lost_ns = time.time_ns()
        opc.kill()
        plc.command(hang=True)
        wait(lambda: all(any(s.ts >= lost_ns and s.quality == Quality.BAD
                             for s in collector.samples(d) if s.tag == "part_count")
                         for d in (OPC, PLC)), 20, "part_count bad on both devices")
        status = {d: json.loads(retained(mosquitto.port, [d.topic("status")])[d.topic("status")])
                  for d in (OPC, PLC)}
        time.sleep(6)  # the hung PLC: connects, times out, backs off (0.2, 0.4, 0.8 ... s)
        opc = NodeOpcUa(tmp_path / "opc", opc_vars, port=opc.port)
        plc.command(hang=False)
        back_ns = time.time_ns()
        wait(lambda: all(any(s.ts >= back_ns and s.quality == Quality.GOOD
                             for s in states(collector, d)) for d in (OPC, PLC)), 60,
             "both states good again")
        proc.send_signal(signal.SIGKILL)  # the agent's own downtime
        proc.wait(10)
        killed_ns = time.time_ns()
        wills = {d: json.loads(retained(mosquitto.port, [d.topic("status")], 15)[
            d.topic("status")]) for d in (OPC, PLC)}
        time.sleep(2)
        proc = agent(config, log2)
        restart_ns = time.time_ns()
        wait(lambda: all(any(s.ts >= restart_ns and s.quality == Quality.GOOD
                             for s in states(collector, d)) for d in (OPC, PLC)), 60,
             "states after the restart")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        collector.stop()
        opc.close()
        plc.close()

    run1 = log1.read_text()
    assert "Traceback" not in run1, run1[-3000:]
    assert not [line for line in run1.splitlines() if " asyncua" in line
                or " pymodbus" in line], run1[-3000:]
    for dev in ("cnc", "plc"):  # one line per device per loss, whatever the retries
        assert run1.count(f"{dev}: device disconnected") == 1, run1[-3000:]
    # loss: every tag bad (state OFFLINE), the retained status says why
    for d in (OPC, PLC):
        assert status[d]["online"] is False and status[d]["reason"].startswith("device: ")
        lost = [s for s in collector.samples(d) if lost_ns - 5e9 < s.ts < back_ns]
        assert ("state", "OFFLINE", Quality.BAD) in {(s.tag, s.value, s.quality)
                                                      for s in lost}
        assert any(s.tag == "part_count" and s.quality == Quality.BAD for s in lost)
    # the hung PLC was tried with a growing backoff, not every 0.6 s
    attempts = run1.count("plc: device connected")
    assert attempts == 2, run1[-3000:]  # the first connect and the return, no flapping
    # the will: no start time passed off as the time of death
    for d in (OPC, PLC):
        assert wills[d]["online"] is False and wills[d]["will"] is True, wills[d]
        assert "ts" not in wills[d] and wills[d]["connected_ts"] < killed_ns
    # the agent's downtime: OFFLINE from its last second alive until read again
    assert "did not stop cleanly" in log2.read_text()
    for d in (OPC, PLC):
        marks = [s for s in states(collector, d)
                 if killed_ns - 3e9 < s.ts < restart_ns and s.quality == Quality.BAD]
        assert [s.value for s in marks] == ["OFFLINE"], marks
        before = [s for s in states(collector, d) if s.ts < marks[0].ts]
        tail = [(s.ts - killed_ns, s.value, s.quality.value) for s in states(collector, d)][-12:]
        assert killed_ns - before[-1].ts < 2.5e9, (d, back_ns - killed_ns, tail)  # the last
        # sample of the killed run...
        assert marks[0].ts >= before[-1].ts  # ...then the mark (its last second alive)
        first = next(s for s in states(collector, d) if s.ts > marks[0].ts)
        assert first.quality == Quality.GOOD and first.ts >= restart_ns
