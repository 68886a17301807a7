"""One simulated PLC as a pymodbus Modbus server (unit id 1): Modbus TCP, or Modbus RTU
on a serial line when ``spec.serial_port`` is set (``SERIAL_LINE``: 19200 baud 8N1; not
the Modbus default 8E1, because the test's null modem, two linked ptys, refuses even
parity on some Linux kernels with EINVAL).

``ModbusLineServer`` serves several such PLCs (unit ids 1, 2, 3, ...) on ONE line: an
RS-485 multi-drop serial line, or an RTU-over-TCP gateway (RTU frames over one TCP
port); a unit can be made silent (requests for it go unanswered, like a dead slave).

Holding registers, the machine:

| address | content | type |
|---|---|---|
| 0 | device state code | uint16 |
| 1-2 | part count (good + reject, cumulative) | uint32, word order ABCD |
| 3-4 | reject count (cumulative) | uint32 ABCD |
| 5-6 | spindle load % | float32 ABCD |
| 7-10 | product id (empty without ``products``) | string, 8 ASCII chars, ABCD, NUL padded |
| 11 | stop reason code (0: none; always 0 without ``stop_reasons``) | uint16 |

A state change is one write of the whole image, so a reader never sees a new state with
the old product or reason.

Type test bank (fixed values, for commissioning a reader's types and byte orders):
holding and input registers from ``BANK_START`` (100) hold every type of ``BANK_VALUES``
in every byte order of ``ORDERS``, each value followed by one unused register holding
``BANK_FILLER`` (so only a reader that reads through 1-register gaps merges them); the
input registers hold other values than the holding registers (a reader that confuses
the tables fails). ``BANK`` lists every entry with its address and expected value.
Coils and discrete inputs from 100 hold the fixed patterns of ``BANK_BITS`` (a 14-bit
gap after the first 16). Addresses outside these blocks answer IllegalAddress.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .codes import DEVICE_STATE_CODES
from .machine import Event, Kind
from .scenario import MachineSpec

UNIT_ID = 1
REG_STATE = 0
REG_PART_COUNT = 1
REG_REJECT_COUNT = 3
REG_SPINDLE_LOAD = 5
REG_PRODUCT = 7
PRODUCT_REGISTERS = 4  # 8 characters
REG_STOP_REASON = 11
REGISTER_COUNT = 12
_WRITE_MULTIPLE = 16  # function code used to address the holding registers
SERIAL_LINE = {"baudrate": 19200, "bytesize": 8, "parity": "N", "stopbits": 1}

logging.getLogger("pymodbus").setLevel(logging.WARNING)

# Byte order of a value in its registers, A its most significant byte: ABCD big-endian,
# CDAB low word first, BADC bytes swapped in each word, DCBA little-endian. A 16-bit value
# has no word order (CDAB = ABCD, DCBA = BADC); 64-bit values extend the rule to 4 words.
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
_LAYOUTS = {2: {"ABCD": "AB", "CDAB": "AB", "BADC": "BA", "DCBA": "BA"},
            4: {o: o for o in ORDERS},
            8: {"ABCD": "ABCDEFGH", "CDAB": "GHEFCDAB", "BADC": "BADCFEHG",
                "DCBA": "HGFEDCBA"}}
STRUCT_FORMATS = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q",
                  "uint64": "Q", "float32": "f", "float64": "d"}


def encode(value: int | float | str, type_: str, order: str = "ABCD",
           length: int = 0) -> list[int]:
    """``value`` as registers (lowest address first) in byte order ``order``. A string
    takes ``length`` registers, two characters each (NUL padded); BADC/DCBA put the first
    character of each register in its low byte."""
    if type_ == "string":
        raw = str(value).encode("latin-1").ljust(2 * length, b"\0")
        if len(raw) != 2 * length:
            raise ValueError(f"{value!r} does not fit {length} registers")
        letters = "BA" * length if order in ("BADC", "DCBA") else "AB" * length
        raw = bytes(raw[2 * (i // 2) + ord(c) - ord("A")] for i, c in enumerate(letters))
    else:
        be = struct.pack(">" + STRUCT_FORMATS[type_], value)
        raw = bytes(be[ord(c) - ord("A")] for c in _LAYOUTS[len(be)][order])
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]


def uint32_words(value: int) -> list[int]:
    """A uint32 as two registers, high word first (ABCD)."""
    return encode(value, "uint32")


def float32_words(value: float) -> list[int]:
    """A float32 as two registers, big-endian bytes and words (ABCD)."""
    return encode(value, "float32")


def product_words(product: str | None) -> list[int]:
    """A product id as the 4 registers of ``REG_PRODUCT`` (empty: all zero)."""
    return encode(product or "", "string", "ABCD", PRODUCT_REGISTERS)


def registers(ev: Event) -> list[int]:
    """The full register image (0..11) of a machine snapshot."""
    return ([DEVICE_STATE_CODES[ev.state]] + uint32_words(ev.part_count)
            + uint32_words(ev.reject_count) + float32_words(ev.spindle_load)
            + product_words(ev.product) + [ev.stop_reason])


def _f32(v: float) -> float:
    """``v`` as float32 holds it (so expected values compare exactly)."""
    return struct.unpack(">f", struct.pack(">f", v))[0]


BANK_START = 100
BANK_FILLER = 0xA5A5
BANK_STRING_LENGTH = 5  # registers: 8 characters and a NUL
# Per table; every value has distinct bytes, so any wrong byte order reads another value.
BANK_VALUES: dict[str, dict[str, int | float | str]] = {
    "holding": {"int16": -12345, "uint16": 0xBEEF, "int32": -0x12345678,
                "uint32": 0xDEADBEEF, "int64": -0x0123456789ABCDEF,
                "uint64": 0xF1E2D3C4B5A69788, "float32": _f32(-1234.5678),
                "float64": -9876.54321, "string": "PRESS-01"},
    "input": {"int16": -23456, "uint16": 0xCAFE, "int32": -0x23456789,
              "uint32": 0xC0FFEE42, "int64": -0x0213243546576879,
              "uint64": 0xE1D2C3B4A5968778, "float32": _f32(-98.765),
              "float64": 6.02214076e23, "string": "INPUT-02"},
}
_PATTERN = [True, False, True, True, False, False, True, False,
            True, True, True, False, False, False, False, True]
BANK_BITS: dict[str, dict[int, bool]] = {
    "coil": {**{BANK_START + i: b for i, b in enumerate(_PATTERN)}, 130: True, 131: False},
    "discrete": {**{BANK_START + i: not b for i, b in enumerate(_PATTERN)},
                 130: False, 131: True},
}


@dataclass(frozen=True)
class BankValue:
    """One value of the type test bank: where it is and what a correct reader gets."""

    table: str  # "holding" or "input"
    address: int
    type: str
    order: str
    value: int | float | str
    length: int = 0  # registers, strings only

    @property
    def name(self) -> str:
        return f"{self.table}_{self.type}_{self.order}"

    @property
    def registers(self) -> list[int]:
        return encode(self.value, self.type, self.order, self.length)


def _bank() -> list[BankValue]:
    out = []
    for table, values in BANK_VALUES.items():
        address = BANK_START
        for type_, value in values.items():
            length = BANK_STRING_LENGTH if type_ == "string" else 0
            for order in ORDERS:
                entry = BankValue(table, address, type_, order, value, length)
                out.append(entry)
                address += len(entry.registers) + 1  # one unused register after each
    return out


BANK: list[BankValue] = _bank()


def bank_registers(table: str) -> list[int]:
    """The register image of ``table``'s bank, from ``BANK_START``."""
    image: list[int] = []
    for entry in (e for e in BANK if e.table == table):
        image += [BANK_FILLER] * (entry.address - BANK_START - len(image)) + entry.registers
    return image + [BANK_FILLER]


def _bits(table: str) -> list[SimData]:
    bits = BANK_BITS[table]
    start = min(bits)
    values = [bits.get(a, False) for a in range(start, max(bits) + 1)]
    return [SimData(start, values=values, datatype=DataType.BITS)]


def sim_device(machine: list[int] | None = None, unit: int = UNIT_ID) -> SimDevice:
    """The PLC's four tables (coils, discrete inputs, holding and input registers);
    ``machine``: the holding registers 0.. (default all zero)."""
    def regs(address: int, values: list[int]) -> SimData:
        return SimData(address, values=values, datatype=DataType.REGISTERS)

    return SimDevice(id=unit, simdata=(
        _bits("coil"), _bits("discrete"),
        [regs(0, list(machine or [0] * REGISTER_COUNT)),
         regs(BANK_START, bank_registers("holding"))],
        [regs(BANK_START, bank_registers("input"))]))


def write_of(ev: Event) -> tuple[int, list[int]]:
    """The one register write (address, values) that applies an event."""
    if ev.kind is Kind.STATE:  # state, product and reason in one write
        return REG_STATE, registers(ev)
    if ev.kind is Kind.PART:
        # One write for both counters, so a reader never sees them out of step.
        return REG_PART_COUNT, uint32_words(ev.part_count) + uint32_words(ev.reject_count)
    return REG_SPINDLE_LOAD, float32_words(ev.spindle_load)


class ModbusMachine:
    """Serves one machine's registers; ``apply`` writes an event's changes.

    ``requests`` counts the requests received, by pymodbus PDU class name (for tests and
    commissioning: how many reads did a client need?).
    """

    def __init__(self, spec: MachineSpec):
        self.spec = spec
        self.url = (f"modbus-rtu://{spec.serial_port}" if spec.serial_port
                    else f"modbus://{spec.host}:{spec.port}")
        self.requests: Counter[str] = Counter()
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._image = [0] * REGISTER_COUNT  # the machine's registers, kept during an outage

    def _count(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            self.requests[type(pdu).__name__] += 1
        return pdu

    async def start(self) -> None:
        """Listen (TCP) or open the serial port; returns once clients can be answered."""
        spec = self.spec
        if spec.serial_port:
            self._server = ModbusSerialServer(sim_device(self._image), framer=FramerType.RTU,
                                              port=spec.serial_port, trace_pdu=self._count,
                                              **SERIAL_LINE)  # type: ignore[arg-type]
        else:
            self._server = ModbusTcpServer(sim_device(self._image), address=(spec.host, spec.port),
                                           trace_pdu=self._count)
        await self._server.serve_forever(background=True)

    async def _set(self, address: int, values: list[int]) -> None:
        self._image[address:address + len(values)] = values
        if self._server is None:  # outage: the next server starts with the image
            return
        err = await self._server.context.async_setValues(
            UNIT_ID, _WRITE_MULTIPLE, address, values)
        if err is not None:
            raise RuntimeError(f"{self.spec.id}: cannot set registers {address}: {err!r}")

    async def apply(self, ev: Event, ts_ns: int) -> None:
        del ts_ns  # Modbus carries no timestamps: the reader stamps its read time
        address, values = write_of(ev)
        await self._set(address, values)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def go_offline(self) -> None:
        """Outage: close the listener and connections; ``apply`` keeps the registers."""
        await self.stop()

    async def go_online(self) -> None:
        """After an outage: listen again, serving the current registers from the start."""
        await self.start()


class ModbusLineServer:
    """Several machines on one Modbus line: ``units`` (unit ids) served as RTU on
    ``serial_port`` (``SERIAL_LINE``), or else as RTU frames over TCP on host:port (an
    RTU-over-TCP gateway). ``silent`` holds units that get no answer (a dead slave: the
    request is received and counted, the answer never sent).

    ``requests`` counts requests received per unit id; ``connections`` the TCP
    connections accepted (a gateway shared by several units should see one). ``apply``
    works before ``start`` too (the units then answer with those values from the first
    request on), and the registers are kept across ``stop`` and ``start``.
    """

    def __init__(self, units: list[int], serial_port: str | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.units = list(units)
        self.serial_port, self.host, self.port = serial_port, host, port
        self.silent: set[int] = set()
        self.requests: Counter[int] = Counter()
        self.connections = 0
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._images = {u: [0] * REGISTER_COUNT for u in self.units}

    def _pdu(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            self.requests[pdu.dev_id] += 1
        return pdu

    def _packet(self, sending: bool, packet: bytes) -> bytes:
        # an RTU frame starts with the unit id: a silent unit's answer is not sent
        return b"" if sending and packet and packet[0] in self.silent else packet

    def _connect(self, up: bool) -> None:
        self.connections += up

    async def start(self) -> None:
        devices = [sim_device(self._images[u], unit=u) for u in self.units]
        trace = {"trace_pdu": self._pdu, "trace_packet": self._packet}
        if self.serial_port:
            self._server = ModbusSerialServer(devices, framer=FramerType.RTU,
                                              port=self.serial_port, **trace,
                                              **SERIAL_LINE)  # type: ignore[arg-type]
        else:
            self._server = ModbusTcpServer(devices, framer=FramerType.RTU,
                                           address=(self.host, self.port),
                                           trace_connect=self._connect, **trace)
        await self._server.serve_forever(background=True)

    async def apply(self, unit: int, ev: Event) -> None:
        """Unit ``unit``'s machine event (as ``ModbusMachine.apply``)."""
        address, values = write_of(ev)
        self._images[unit][address:address + len(values)] = values
        if self._server is None:
            return
        err = await self._server.context.async_setValues(unit, _WRITE_MULTIPLE, address,
                                                         values)
        if err is not None:
            raise RuntimeError(f"unit {unit}: cannot set registers {address}: {err!r}")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
