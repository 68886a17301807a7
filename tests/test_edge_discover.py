"""`shopfloor edge discover` against the OPC UA simulator: the printed skeleton is valid
YAML, lists the machine's variables, and (with id/path filled in) is a valid config."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
import yaml
from services import free_port

from shopfloor.contract import DevicePath
from shopfloor.edge.config import EdgeConfig
from shopfloor.simulators.opcua_machine import OpcUaMachine, ServerOptions
from shopfloor.simulators.scenario import MachineSpec

pytestmark = pytest.mark.timeout(60)


async def discover(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shopfloor", "edge", "discover", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out, _ = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def test_discover_prints_a_config_skeleton(tmp_path):
    asyncio.run(_discover(tmp_path))


async def _discover(tmp_path) -> None:
    spec = MachineSpec(path=DevicePath("e", "s", "a", "l", "cnc-07"), protocol="opcua",
                       host="127.0.0.1", port=free_port(), ideal_cycle_time_s=1,
                       speed_factor=1, reject_rate=0, durations_s={})
    sim = OpcUaMachine(spec, ServerOptions(extra_variables=3))
    await sim.start()
    try:
        code, out = await discover(sim.url)
        code_cut, out_cut = await discover(sim.url, "--max-nodes", "3")
    finally:
        await sim.stop()
    assert code == 0, out
    doc = yaml.safe_load(out)
    dev = doc["devices"][0]
    nodes = {t["node"]: t["name"] for t in dev["tags"]}
    uri = "nsu=urn:shopfloor:sim;s=cnc-07"  # by namespace URI: survives a new ns table
    assert nodes == {
        f"{uri}.State": "cnc-07.State", f"{uri}.PartCount": "cnc-07.PartCount",
        f"{uri}.RejectCount": "cnc-07.RejectCount", f"{uri}.SpindleLoad": "cnc-07.SpindleLoad",
        f"{uri}.Var0": "cnc-07.Var0", f"{uri}.Var1": "cnc-07.Var1", f"{uri}.Var2": "cnc-07.Var2"}
    assert "# browse_path: 2:cnc-07/2:State  type: Int32" in out
    assert "# browse_path: 2:cnc-07/2:SpindleLoad  type: Double" in out
    cfg = EdgeConfig.model_validate(doc)  # a whole config as printed
    assert len(cfg.devices[0].tags) == 7

    assert code_cut == 0 and "browse stopped at --max-nodes" in out_cut
    assert len(yaml.safe_load(out_cut)["devices"][0]["tags"]) == 2  # object + 2 variables


def test_discover_unreachable_server_exits_1():
    code, out = asyncio.run(discover(f"opc.tcp://127.0.0.1:{free_port()}"))
    assert code == 1 and "discover" in out
