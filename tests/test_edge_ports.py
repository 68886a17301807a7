"""Every way the agent publishes a device (the JSON contract's ``DevicePublisher``, a
Sparkplug edge node's ``DevicePort``) has the whole ``Port`` interface: a missing method
(``device_status``) made every device connect fail on a Sparkplug node, so steady
machines were published OFFLINE."""

from __future__ import annotations

import asyncio

from shopfloor.edge.config import EdgeConfig
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.publisher import DevicePublisher, Port
from shopfloor.edge.sparkplug.ports import sparkplug_ports


def config(tmp_path, sparkplug: bool) -> EdgeConfig:
    return EdgeConfig.model_validate({
        "agent_id": "edge-1", "outbox": {"path": str(tmp_path / "outbox.db")},
        **({"sparkplug": {"group_id": "g"}} if sparkplug else {}),
        "devices": [{"id": "m", "protocol": "modbus", "host": "127.0.0.1", "port": 1502,
                     "path": {"enterprise": "e", "site": "s", "area": "a", "line": "l"},
                     "tags": [{"name": "state", "signal": "state",
                               "register": {"address": 0, "type": "uint16"}}]}]})


def test_both_ports_have_the_interface_the_agent_uses(tmp_path):
    async def ports() -> list[object]:
        loop = asyncio.get_running_loop()
        cfg = config(tmp_path, sparkplug=False)
        outbox = Outbox(cfg.outbox.path, cfg.agent_id)
        dev = cfg.devices[0]
        json_port = DevicePublisher(agent=cfg.agent_id, device=dev.id, path=dev.device_path,
                                    mqtt_cfg=cfg.mqtt, outbox=outbox, meta=b"{}",
                                    max_inflight=5, loop=loop)
        _, sp = sparkplug_ports(config(tmp_path, sparkplug=True), outbox, loop)
        return [json_port, sp["m"]]

    for port in asyncio.run(ports()):
        assert isinstance(port, Port), type(port).__name__
        port.device_status(True)  # neither raises before it is started
        port.device_status(False, "timeout")
