"""What the agent publishes through when it is a Sparkplug edge node: one ``DevicePort`` per
device, all sharing the node's single MQTT session (the agent's interface of
``publisher.DevicePublisher``: ``start``, ``pump``, ``stop``, ``connected``, ``inflight``,
``published``, ``device_status``, ``path``, ``device``).

``sparkplug_ports(cfg, outbox, loop)`` -> (the outbox the agent appends to, ports by device).
"""

from __future__ import annotations

import asyncio
from typing import Any

from shopfloor.contract import DevicePath

from ..config import EdgeConfig
from .node import SparkplugNode


class DevicePort:
    def __init__(self, node: SparkplugNode, device: str, path: DevicePath):
        self.node, self.device, self.path = node, device, path

    def start(self) -> None:
        self.node.start()

    def pump(self) -> None:
        self.node.pump()

    def stop(self, timeout: float = 2.0) -> None:
        self.node.stop(timeout)

    def device_status(self, up: bool, detail: str = "") -> None:
        """Nothing to send: a Sparkplug host learns of a lost device from its DDEATH (sent
        with the OFFLINE state the agent publishes) and of its return from a DBIRTH."""

    @property
    def connected(self) -> bool:
        return self.node.connected and self.node.born

    @property
    def inflight(self) -> int:
        return self.node.inflight

    @property
    def published(self) -> int:
        return self.node.published[self.device]


def sparkplug_ports(cfg: EdgeConfig, outbox: Any, loop: asyncio.AbstractEventLoop,
                    ) -> tuple[Any, dict[str, DevicePort]]:
    node = SparkplugNode(cfg, outbox, loop)
    return node.outbox, {d.id: DevicePort(node, d.id, d.device_path) for d in cfg.devices}
