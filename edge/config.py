"""The edge agent's typed config: ``load_edge_config(path)`` or ``EdgeConfig.model_validate``.

See ``edge.sample.yaml`` beside this file for a commented example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shopfloor.config import Strict, load_config
from shopfloor.contract import SEGMENT_RE, SIGNALS, TAG_RE, DevicePath
from shopfloor.mqtt import MqttConfig

Segment = Annotated[str, Field(pattern=SEGMENT_RE.pattern)]

# Register types and how many 16-bit registers each takes.
REGISTER_WORDS: dict[str, int] = {
    "uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2,
    "uint64": 4, "int64": 4, "float64": 4, "bool": 1,
}
RegisterType = Literal["uint16", "int16", "uint32", "int32", "float32",
                       "uint64", "int64", "float64", "bool"]
# Byte order within the value: A is the most significant byte. ABCD = big-endian,
# CDAB = word-swapped, BADC = byte-swapped, DCBA = little-endian.
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]


class OutboxConfig(Strict):
    path: Path = Field(description="SQLite file holding batches until the broker acknowledges")
    max_bytes: int | None = Field(
        None, gt=0, description="cap on stored payload bytes; the oldest batches are dropped "
                                "(and counted) beyond it. Default: unbounded")


class PublishConfig(Strict):
    max_batch_samples: int = Field(500, ge=1, le=50_000)
    max_batch_interval_s: float = Field(0.2, gt=0, le=60)
    heartbeat_s: float = Field(10.0, gt=0, description="re-publish an unchanged tag this often")
    max_inflight: int = Field(20, ge=1, le=1000, description="unacknowledged batches per device")


class Register(Strict):
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    address: int = Field(ge=0, le=65535)
    type: RegisterType = "uint16"
    word_order: WordOrder = "ABCD"

    @model_validator(mode="after")
    def _bits_tables(self) -> Register:
        if self.table in ("coil", "discrete") and self.type != "bool":
            raise ValueError(f"table {self.table!r} holds bits: type must be 'bool'")
        if self.address + REGISTER_WORDS[self.type] > 65536:
            raise ValueError("register range runs past address 65535")
        return self

    @property
    def words(self) -> int:
        return 1 if self.table in ("coil", "discrete") else REGISTER_WORDS[self.type]


class TagBase(Strict):
    name: str = Field(pattern=TAG_RE.pattern, description="tag name on the device side")
    signal: str | None = Field(None, description=f"semantic signal, one of {SIGNALS}")
    map: dict[int, str] | None = Field(None, description="raw code -> published string")
    bits: int | None = Field(None, ge=1, le=64, description="counter width (rollover)")
    unit: str | None = None

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, v: str | None) -> str | None:
        if v is not None and v not in SIGNALS:
            raise ValueError(f"unknown signal {v!r}; expected one of {', '.join(SIGNALS)}")
        return v

    @property
    def published_name(self) -> str:
        return self.signal or self.name


class OpcUaTag(TagBase):
    node: str = Field(description='OPC UA node id, e.g. "ns=2;s=cnc-01.State"')

    @field_validator("node")
    @classmethod
    def _node_id(cls, v: str) -> str:
        from asyncua import ua

        try:
            ua.NodeId.from_string(v)
        except Exception:
            raise ValueError(f"{v!r} is not an OPC UA node id like 'ns=2;s=Name'") from None
        return v


class ModbusTag(TagBase):
    # "register" in YAML; pydantic models are ABCs, whose ``register`` we must not shadow.
    reg: Register = Field(alias="register")


class DevicePathConfig(Strict):
    enterprise: Segment
    site: Segment
    area: Segment
    line: Segment


class DeviceBase(Strict):
    id: Segment = Field(description="device segment of the topic")
    path: DevicePathConfig

    @model_validator(mode="after")
    def _unique_names(self) -> DeviceBase:
        seen: set[str] = set()
        for tag in self.tags:  # type: ignore[attr-defined]
            if tag.published_name in seen:
                raise ValueError(f"two tags publish as {tag.published_name!r}")
            seen.add(tag.published_name)
        return self

    @property
    def device_path(self) -> DevicePath:
        p = self.path
        return DevicePath(p.enterprise, p.site, p.area, p.line, self.id)


class OpcUaDevice(DeviceBase):
    protocol: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://", description="opc.tcp://host:port[/path]")
    sampling_interval_ms: float = Field(100, ge=0)
    queue_size: int = Field(100, ge=2, description=">1 so no state transition is coalesced")
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(4.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    tags: list[OpcUaTag] = Field(min_length=1)


class ModbusDevice(DeviceBase):
    protocol: Literal["modbus"]
    host: str
    port: int = Field(502, ge=1, le=65535)
    unit: int = Field(1, ge=0, le=255)
    poll_s: float = Field(0.1, gt=0)
    timeout_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    tags: list[ModbusTag] = Field(min_length=1)


DeviceConfig = Annotated[OpcUaDevice | ModbusDevice, Field(discriminator="protocol")]


class EdgeConfig(Strict):
    agent_id: Segment
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig
    publish: PublishConfig = PublishConfig()
    stats_interval_s: float = Field(60.0, gt=0, description="period of the stats log line")
    devices: list[DeviceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_devices(self) -> EdgeConfig:
        seen: set[str] = set()
        for d in self.devices:
            if d.device_path.asset_id in seen:
                raise ValueError(f"device {d.device_path.asset_id!r} is configured twice")
            seen.add(d.device_path.asset_id)
        return self


def load_edge_config(path: Path | str) -> EdgeConfig:
    """Load and validate; raises shopfloor.config.ConfigError naming file and key."""
    return load_config(path, EdgeConfig)
