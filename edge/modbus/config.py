"""The Modbus device config: ``ModbusDevice`` (transport, unit, poll, gaps), its tags
(``ModbusTag`` with a ``Register``: table, address, type, byte order) and ``SerialLine``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import Field, field_validator, model_validator

from shopfloor.config import Strict

from ..device import DeviceBase, TagBase

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


class ModbusTag(TagBase):
    # "register" in YAML; pydantic models are ABCs, whose ``register`` we must not shadow.
    reg: Register = Field(alias="register")

    @property
    def value_type(self) -> str | None:
        return self.reg.type


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
    unit: int = Field(1, ge=0, le=255, description="unit id; devices on one serial port or "
                      "one host:port share that line's connection")
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


def check_shared_lines(devices: Iterable[ModbusDevice]) -> None:
    """Modbus devices on one serial port, or behind one host:port, share the line: one
    transport per host:port; on an RTU line (serial or over TCP) the same serial settings
    and a unit id each (a Modbus TCP server may be one PLC read as two devices)."""
    lines: dict[tuple[str, ...], ModbusDevice] = {}
    units: set[tuple[tuple[str, ...], int]] = set()
    tcp: dict[tuple[str, int], str] = {}  # host:port -> transport
    for d in devices:
        if d.host is not None:
            other = tcp.setdefault((d.host, d.port), d.transport)
            if other != d.transport:
                raise ValueError(f"device {d.id!r}: {d.host}:{d.port} is used with "
                                 f"transports {other} and {d.transport}")
        if d.transport == "tcp":
            continue
        key = (("rtu", d.serial.port) if d.serial is not None
               else ("rtu_over_tcp", str(d.host), str(d.port)))
        first = lines.setdefault(key, d)
        if first.serial != d.serial:
            raise ValueError(f"devices {first.id!r} and {d.id!r} share serial port "
                             f"{key[1]} with different line settings")
        if (key, d.unit) in units:
            raise ValueError(f"device {d.id!r}: unit {d.unit} is already on its line "
                             f"({d.where})")
        units.add((key, d.unit))
