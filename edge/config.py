"""The edge agent's typed config: ``load_edge_config(path)`` or ``EdgeConfig.model_validate``.

See ``edge.sample.yaml`` beside this file for a commented example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shopfloor.config import MetricsEndpoint, Segment, Strict, load_config
from shopfloor.contract import SIGNALS, TAG_RE, DevicePath
from shopfloor.mqtt import MqttConfig

# Register types and how many 16-bit registers each takes ("string" takes ``length``).
REGISTER_WORDS: dict[str, int] = {
    "uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2,
    "uint64": 4, "int64": 4, "float64": 4, "bool": 1, "bit": 1, "string": 0,
}
RegisterType = Literal["uint16", "int16", "uint32", "int32", "float32",
                       "uint64", "int64", "float64", "bool", "bit", "string"]
# Byte order within the value: A is the most significant byte. ABCD = big-endian,
# CDAB = word-swapped, BADC = byte-swapped, DCBA = little-endian. The 64-bit names are
# the same four rules spelt out over eight bytes (normalised to the 4-letter form).
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA",
                    "ABCDEFGH", "GHEFCDAB", "BADCFEHG", "HGFEDCBA"]
_ORDER_64 = {"ABCDEFGH": "ABCD", "GHEFCDAB": "CDAB", "BADCFEHG": "BADC", "HGFEDCBA": "DCBA"}
BIT_TABLES = ("coil", "discrete")


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


class Register(Strict):
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    address: int = Field(ge=0, le=65535)
    type: RegisterType = "uint16"
    word_order: WordOrder = "ABCD"
    bit: int | None = Field(None, ge=0, le=15, description="bool/bit: bit of a 16-bit register")
    length: int | None = Field(None, ge=1, le=125, description="string: registers (2 chars each)")
    scale: float = Field(1.0, description="published = raw * scale + offset (numeric types)")
    offset: float = 0.0

    @field_validator("word_order", mode="before")
    @classmethod
    def _order4(cls, v: object) -> object:
        return _ORDER_64.get(v, v) if isinstance(v, str) else v

    @field_validator("type", mode="before")
    @classmethod
    def _bit_is_bool(cls, v: object) -> object:
        return "bool" if v == "bit" else v

    @model_validator(mode="after")
    def _check(self) -> Register:
        if self.table in BIT_TABLES:
            if self.type != "bool":
                raise ValueError(f"table {self.table!r} holds bits: type must be 'bool'")
            if self.bit is not None:
                raise ValueError(f"'bit' selects a bit of a register, not of table {self.table!r}")
        if self.bit is not None and self.type != "bool":
            raise ValueError("'bit' needs type 'bool'")
        if (self.type == "string") != (self.length is not None):
            raise ValueError("type 'string' needs 'length' (registers), no other type does")
        if (self.scale != 1.0 or self.offset != 0.0) and self.type in ("bool", "string"):
            raise ValueError(f"scale/offset apply to numbers, not to {self.type!r}")
        if self.address + self.words > 65536:
            raise ValueError("register range runs past address 65535")
        return self

    @property
    def words(self) -> int:
        if self.table in BIT_TABLES:
            return 1
        return self.length if self.type == "string" and self.length else REGISTER_WORDS[self.type]


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


class DataChangeFilter(Strict):
    """OPC UA data-change filter of a monitored item."""

    trigger: Literal["Status", "StatusValue", "StatusValueTimestamp"] = "StatusValue"
    deadband_type: Literal["none", "absolute", "percent"] = "none"
    deadband_value: float = Field(0.0, ge=0, description="absolute units, or % of EURange")


class OpcUaTag(TagBase):
    node: str | None = Field(None, description='node id: "ns=2;s=Name", "ns=2;i=1005", '
                                               '"nsu=urn:...;s=Name"')
    browse_path: str | None = Field(
        None, description='from Objects, e.g. "2:cnc-01/2:State" (namespace index:name)')
    filter: DataChangeFilter | None = Field(None, description="overrides the device's")

    @field_validator("node")
    @classmethod
    def _node_id(cls, v: str | None) -> str | None:
        from asyncua import ua

        if v is None:
            return v
        try:
            ua.NodeId.from_string(v)
        except Exception:
            raise ValueError(f"{v!r} is not an OPC UA node id like 'ns=2;s=Name'") from None
        return v

    @field_validator("browse_path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and not all(p.strip() for p in v.split("/")):
            raise ValueError(f"browse path {v!r} has an empty element")
        return v

    @model_validator(mode="after")
    def _one_address(self) -> OpcUaTag:
        if (self.node is None) == (self.browse_path is None):
            raise ValueError("give exactly one of 'node' and 'browse_path'")
        return self

    @property
    def address(self) -> str:
        return self.node or f"path:{self.browse_path}"


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


SecurityPolicy = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep",
                         "Aes256_Sha256_RsaPss"]


class OpcUaSecurity(Strict):
    """Secure channel and client application certificate (``shopfloor edge cert``)."""

    policy: SecurityPolicy = "Basic256Sha256"
    mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: Path = Field(description="the agent's certificate (DER or PEM)")
    private_key: Path = Field(description="the agent's private key (PEM)")
    private_key_password: SecretStr | None = None
    server_certificate: Path | None = Field(
        None, description="pin the server's certificate; else taken from its endpoints")
    trust_dir: Path | None = Field(
        None, description="directory of trusted server certificates; the server's must be "
                          "in it (or signed by one in it)")
    application_uri: str = Field("urn:shopfloor:edge",
                                 description="must match the certificate's URI")

    @model_validator(mode="after")
    def _policy(self) -> OpcUaSecurity:
        if self.policy == "None":
            raise ValueError("policy 'None': leave out 'security' for an insecure channel")
        return self


class OpcUaDevice(DeviceBase):
    protocol: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://", description="opc.tcp://host:port[/path]")
    mode: Literal["subscribe", "poll"] = Field(
        "subscribe", description="data-change subscription, or reads every poll_s")
    poll_s: float = Field(1.0, gt=0, description="mode poll: read period")
    sampling_interval_ms: float = Field(100, ge=0)
    queue_size: int = Field(100, ge=2, description=">1 so no state transition is coalesced")
    filter: DataChangeFilter | None = Field(None, description="data-change filter of every tag")
    max_nodes_per_call: int = Field(
        1000, ge=1, description="nodes per Read / CreateMonitoredItems when the server "
                                "does not publish its OperationLimits")
    security: OpcUaSecurity | None = None
    username: str | None = None
    password: SecretStr | None = None
    user_certificate: Path | None = Field(None, description="X.509 user identity (certificate)")
    user_private_key: Path | None = None
    timeout_s: float = Field(4.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    tags: list[OpcUaTag] = Field(min_length=1)

    @model_validator(mode="after")
    def _identity(self) -> OpcUaDevice:
        if (self.user_certificate is None) != (self.user_private_key is None):
            raise ValueError("user_certificate and user_private_key go together")
        if self.user_certificate is not None and self.username is not None:
            raise ValueError("one identity: username or user_certificate, not both")
        if self.password is not None and self.username is None:
            raise ValueError("password without username")
        return self


class SerialLine(Strict):
    """An RS-485/RS-232 line for Modbus RTU."""

    port: str = Field(pattern=r"^(/[A-Za-z0-9_./-]+|COM[0-9]{1,3})$",
                      description="serial device, e.g. /dev/ttyUSB0 or COM3")
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 19200
    parity: Literal["N", "E", "O"] = "E"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1


class ModbusDevice(DeviceBase):
    protocol: Literal["modbus"]
    transport: Literal["tcp", "rtu_over_tcp", "rtu"] = Field(
        "tcp", description="Modbus TCP, RTU frames over a TCP gateway, or RTU on a serial line")
    host: str | None = Field(None, description="tcp and rtu_over_tcp")
    port: int = Field(502, ge=1, le=65535)
    serial: SerialLine | None = Field(None, description="rtu: the serial line")
    unit: int = Field(1, ge=0, le=255)
    poll_s: float = Field(0.1, gt=0, description="poll period of this device")
    timeout_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    max_gap_registers: int = Field(
        0, ge=0, le=123, description="read through up to this many unused registers to merge")
    max_gap_bits: int = Field(0, ge=0, le=1998, description="same, for coils/discrete inputs")
    tags: list[ModbusTag] = Field(min_length=1)

    @model_validator(mode="after")
    def _transport(self) -> ModbusDevice:
        if self.transport == "rtu":
            if self.serial is None:
                raise ValueError("transport 'rtu' needs 'serial: {port: /dev/ttyUSB0, ...}'")
            if self.host is not None:
                raise ValueError("transport 'rtu' is a serial line: remove 'host'")
        else:
            if not self.host:
                raise ValueError(f"transport {self.transport!r} needs 'host'")
            if self.serial is not None:
                raise ValueError(f"'serial' is for transport 'rtu', not {self.transport!r}")
        return self

    @property
    def where(self) -> str:
        if self.transport == "rtu":
            assert self.serial is not None
            return f"modbus-rtu://{self.serial.port}/{self.unit}"
        scheme = "modbus" if self.transport == "tcp" else "modbus-rtu-tcp"
        return f"{scheme}://{self.host}:{self.port}/{self.unit}"


DeviceConfig = Annotated[OpcUaDevice | ModbusDevice, Field(discriminator="protocol")]


class EdgeConfig(Strict):
    agent_id: Segment
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig
    publish: PublishConfig = PublishConfig()
    stats_interval_s: float = Field(60.0, gt=0, description="period of the stats log line")
    metrics: MetricsConfig | None = Field(None, description="Prometheus /metrics; off if unset")
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


def load_edge_config(path: Path | str) -> EdgeConfig:
    """Load and validate; raises shopfloor.config.ConfigError naming file and key."""
    return load_config(path, EdgeConfig)
