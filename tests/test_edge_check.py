"""`shopfloor edge check`: one reachable and one unreachable device, an OPC UA device, the
broker; the table, the exit code, and that no secret is printed."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
import yaml
from services import free_port

from shopfloor.contract import DevicePath
from shopfloor.demo.configs import edge_config_from_scenario
from shopfloor.simulators.modbus_machine import ModbusMachine
from shopfloor.simulators.opcua_machine import OpcUaMachine
from shopfloor.simulators.scenario import MachineSpec

pytestmark = pytest.mark.timeout(90)
SECRET = "s3cret-pw-never-shown"


def spec(device: str, protocol: str) -> MachineSpec:
    return MachineSpec(path=DevicePath("acme", "p1", "a", "l", device), protocol=protocol,
                       host="127.0.0.1", port=free_port(), ideal_cycle_time_s=1,
                       speed_factor=1, reject_rate=0, durations_s={})


def write_config(tmp_path, machines: list[dict], mqtt_port: int):
    scenario = {"enterprise": {"id": "acme"}, "site": {"id": "p1"},
                "areas": [{"id": "a", "lines": [{"id": "l", "machines": machines}]}]}
    raw = edge_config_from_scenario(
        scenario, agent_id="edge-c", outbox_path=str(tmp_path / "ob.sqlite"),
        mqtt={"port": mqtt_port, "username": "edge", "password": SECRET})
    for dev in raw["devices"]:
        dev["timeout_s"] = 1.0
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def shopfloor(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shopfloor", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def rows(out: str) -> dict[str, list[str]]:
    table = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) >= 4 and cells[1].startswith(("modbus/", "opcua", "mqtt://")):
            table[cells[0]] = cells[1:]
    return table


def test_check_reports_reachable_and_unreachable_devices(tmp_path, mosquitto):
    asyncio.run(_check(tmp_path, mosquitto.port))


async def _check(tmp_path, mqtt_port: int) -> None:
    press, cnc = ModbusMachine(spec("press-01", "modbus")), OpcUaMachine(spec("cnc-01", "opcua"))
    dead_port = free_port()  # nothing listens here
    await press.start()
    await cnc.start()
    try:
        machines = [{"id": "press-01", "protocol": "modbus", "port": press.spec.port},
                    {"id": "cnc-01", "protocol": "opcua", "port": cnc.spec.port},
                    {"id": "dead-01", "protocol": "modbus", "port": dead_port}]
        code, out = await shopfloor("edge", "check", "--config",
                                    str(write_config(tmp_path, machines, mqtt_port)))
        assert code == 1, out
        table = rows(out)
        assert table["press-01"][:3] == ["modbus/tcp", "yes", "4/4"], out
        assert table["cnc-01"][:3] == ["opcua", "yes", "4/4"], out
        assert table["dead-01"][:3] == ["modbus/tcp", "NO", "0/4"], out
        assert "connect" in " ".join(table["dead-01"][3:]).lower(), out
        assert table["broker"][1:3] == ["yes", "-"], out
        assert "FAILED" in out and SECRET not in out

        code, out = await shopfloor("edge", "check", "--config", str(
            write_config(tmp_path, machines[:2], mqtt_port)))
        assert code == 0 and out.rstrip().endswith("OK"), out
        assert SECRET not in out
    finally:
        await press.stop()
        await cnc.stop()


def test_check_reports_unreachable_broker_and_bad_config(tmp_path):
    asyncio.run(_broker_down(tmp_path))


async def _broker_down(tmp_path) -> None:
    press = ModbusMachine(spec("press-01", "modbus"))
    await press.start()
    try:
        path = write_config(tmp_path, [{"id": "press-01", "protocol": "modbus",
                                        "port": press.spec.port}], free_port())
        code, out = await shopfloor("edge", "check", "--config", str(path))
        assert code == 1, out
        table = rows(out)
        assert table["press-01"][:3] == ["modbus/tcp", "yes", "4/4"], out
        assert table["broker"][1] == "NO" and "refused" in out.lower(), out
        assert SECRET not in out
    finally:
        await press.stop()
    path.write_text(path.read_text().replace("poll_s:", "poll_seconds:"))
    code, out = await shopfloor("edge", "check", "--config", str(path))
    assert code == 2 and "poll_seconds" in out, out
