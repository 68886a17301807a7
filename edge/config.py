"""The edge agent's typed config: ``load_edge_config(path)`` or ``EdgeConfig.model_validate``.

The shared parts live here (outbox, publishing, metrics, the device union); each
protocol's device and tag models live in its folder (``modbus/config.py``,
``opcua/config.py``) and are re-exported from here. A new protocol is one more member
of ``DeviceConfig``. See ``edge.sample.yaml`` beside this file for a commented example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from shopfloor.config import MetricsEndpoint, Segment, Strict, load_config
from shopfloor.mqtt import MqttConfig

from .device import DeviceBase, DevicePathConfig, TagBase
from .modbus.config import (
    BIT_TABLES,
    ModbusDevice,
    ModbusTag,
    Register,
    SerialLine,
    check_shared_lines,
)
from .opcua.config import DataChangeFilter, OpcUaDevice, OpcUaSecurity, OpcUaTag
from .sparkplug.config import SparkplugEdgeConfig

__all__ = ["BIT_TABLES", "DataChangeFilter", "DeviceBase", "DeviceConfig", "DevicePathConfig",
           "EdgeConfig", "MetricsConfig", "ModbusDevice", "ModbusTag", "OpcUaDevice",
           "OpcUaSecurity", "OpcUaTag", "OutboxConfig", "PublishConfig", "Register",
           "SerialLine", "TagBase", "load_edge_config"]


class OutboxConfig(Strict):
    path: Path = Field(description="SQLite file holding batches until the broker acknowledges")
    max_bytes: int | None = Field(
        None, gt=0, description="cap on stored payload bytes; the oldest batches are dropped "
                                "(and counted) beyond it. Default: unbounded")
    replay_window: int = Field(10_000, ge=0, description="acknowledged batches kept to answer "
                                                         "a gateway's replay request")


class MetricsConfig(MetricsEndpoint):
    """Prometheus ``/metrics`` endpoint (off unless configured)."""

    refresh_s: float = Field(1.0, gt=0, le=60, description="snapshot period")


class PublishConfig(Strict):
    max_batch_samples: int = Field(500, ge=1, le=50_000)
    max_batch_interval_s: float = Field(0.2, gt=0, le=60)
    heartbeat_s: float = Field(10.0, gt=0, description="re-publish an unchanged tag this often")
    max_inflight: int = Field(20, ge=1, le=1000, description="unacknowledged batches per device")


# One member per protocol, told apart by its ``protocol`` literal (``protocols.DRIVERS``).
DeviceConfig = Annotated[OpcUaDevice | ModbusDevice, Field(discriminator="protocol")]


class EdgeConfig(Strict):
    agent_id: Segment
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig
    publish: PublishConfig = PublishConfig()
    stats_interval_s: float = Field(60.0, gt=0, description="period of the stats log line")
    metrics: MetricsConfig | None = Field(None, description="Prometheus /metrics; off if unset")
    sparkplug: SparkplugEdgeConfig | None = Field(
        None, description="publish as a Sparkplug B edge node instead of shopfloor's JSON "
                          "contract; unset: the JSON contract")
    devices: list[DeviceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_devices(self) -> EdgeConfig:
        seen: set[str] = set()
        for d in self.devices:  # ids key the agent's buffers, metrics and logs
            if d.id in seen:
                raise ValueError(f"device id {d.id!r} is used twice in this agent "
                                 f"(again at {d.device_path.asset_id!r})")
            seen.add(d.id)
        return self

    @model_validator(mode="after")
    def _shared_lines(self) -> EdgeConfig:
        check_shared_lines(d for d in self.devices if isinstance(d, ModbusDevice))
        return self


def load_edge_config(path: Path | str) -> EdgeConfig:
    """Load and validate; raises shopfloor.config.ConfigError naming file and key."""
    return load_config(path, EdgeConfig)
