"""Modbus driver (TCP, RTU over TCP, RTU serial): poll registers, report by exception.

``ModbusDriver(device, sink, heartbeat_s).run()`` polls every ``poll_s`` until cancelled.
``plan_reads`` sorts each table's tags and merges them into requests of at most 125
registers / 2000 bits, reading through gaps up to ``max_gap_*``; ``decode`` turns the
registers into values by type and byte order. A broken connection is re-opened with
capped exponential backoff; each device runs in its own task with its own timeouts, so
a silent device never stalls the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from dataclasses import dataclass, field

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from shopfloor.contract import Quality, Sample

from .config import BIT_TABLES, ModbusDevice, ModbusTag, Register
from .driver import Backoff, Sink, now_ns
from .mapping import ReportByException, to_sample

log = logging.getLogger(__name__)

MAX_REGISTERS = 125  # per read request (Modbus limit for registers)
MAX_BITS = 2000  # per read request (coils / discrete inputs)

_FORMATS = {"uint16": "H", "int16": "h", "uint32": "I", "int32": "i", "float32": "f",
            "uint64": "Q", "int64": "q", "float64": "d"}

Value = int | float | bool | str
ModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient


def _bytes(registers: list[int], word_order: str) -> bytes:
    words = list(registers)
    if word_order in ("CDAB", "DCBA"):
        words.reverse()
    raw = b"".join((w & 0xFFFF).to_bytes(2, "big") for w in words)
    if word_order in ("BADC", "DCBA"):
        raw = b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))
    return raw


def decode(registers: list[int], type_: str, word_order: str = "ABCD") -> Value:
    """Decode 16-bit registers (as read, lowest address first) into a value.

    ``word_order`` names the bytes of a 32-bit value as they sit in the registers, A most
    significant: ABCD big-endian, CDAB low word first, BADC bytes swapped within each word,
    DCBA little-endian. Longer values extend the same rule to every word. A string is
    two characters per register, first character in the high byte (ABCD) or low byte
    (BADC), cut at the first NUL.
    """
    if type_ == "bool":
        return bool(registers[0])
    if type_ == "string":
        order = "BADC" if word_order in ("BADC", "DCBA") else "ABCD"
        return _bytes(registers, order).split(b"\0", 1)[0].decode("latin-1")
    return struct.unpack(">" + _FORMATS[type_], _bytes(registers, word_order))[0]


@dataclass
class Read:
    """One request: ``count`` registers (or bits) of ``table`` from ``start``."""

    table: str
    start: int
    count: int
    tags: list[ModbusTag] = field(default_factory=list)


def plan_reads(tags: list[ModbusTag], max_gap_registers: int = 0,
               max_gap_bits: int = 0) -> list[Read]:
    """Group tags into as few requests as possible: sorted by address per table, ranges
    merge when they overlap, touch, or are at most ``max_gap_*`` unused addresses apart,
    and the merged request stays within the protocol's size limit."""
    reads: list[Read] = []
    by_table: dict[str, list[ModbusTag]] = {}
    for tag in tags:
        by_table.setdefault(tag.reg.table, []).append(tag)
    for table, group in by_table.items():
        bits = table in BIT_TABLES
        limit, gap = (MAX_BITS, max_gap_bits) if bits else (MAX_REGISTERS, max_gap_registers)
        group.sort(key=lambda t: (t.reg.address, t.reg.words))
        cur: Read | None = None
        for tag in group:
            reg = tag.reg
            end = reg.address + reg.words
            if cur is not None and reg.address <= cur.start + cur.count + gap \
                    and max(end, cur.start + cur.count) - cur.start <= limit:
                cur.count = max(cur.count, end - cur.start)
                cur.tags.append(tag)
            else:
                cur = Read(table, reg.address, reg.words, [tag])
                reads.append(cur)
    return reads


def value_of(reg: Register, values: list[int] | list[bool], start: int) -> Value:
    """The tag's value out of a read's registers or bits, with bit, scale and offset."""
    off = reg.address - start
    if reg.table in BIT_TABLES:
        return bool(values[off])
    words = [int(v) for v in values[off:off + reg.words]]
    if reg.bit is not None:
        return bool((words[0] >> reg.bit) & 1)
    value = decode(words, reg.type, reg.word_order)
    if (reg.scale != 1.0 or reg.offset != 0.0) and isinstance(value, int | float):
        return value * reg.scale + reg.offset
    return value


def make_client(dev: ModbusDevice) -> ModbusClient:
    """The pymodbus client of a device's transport (no retries: the driver retries)."""
    if dev.transport == "rtu":
        assert dev.serial is not None
        s = dev.serial
        return AsyncModbusSerialClient(
            s.port, framer=FramerType.RTU, baudrate=s.baudrate, parity=s.parity,
            bytesize=s.bytesize, stopbits=s.stopbits, timeout=dev.timeout_s, retries=0,
            reconnect_delay=0)
    assert dev.host is not None
    framer = FramerType.SOCKET if dev.transport == "tcp" else FramerType.RTU
    return AsyncModbusTcpClient(dev.host, port=dev.port, framer=framer,
                                timeout=dev.timeout_s, retries=0, reconnect_delay=0)


def _set_nodelay(client: ModbusClient) -> None:
    """TCP_NODELAY: a poll is a small request waiting for its answer (no Nagle delay)."""
    with contextlib.suppress(Exception):
        sock = client.ctx.transport.get_extra_info("socket")  # type: ignore[union-attr]
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ModbusDriver:
    def __init__(self, device: ModbusDevice, sink: Sink, heartbeat_s: float):
        self.device = device
        self.sink = sink
        self.rbe = ReportByException(heartbeat_s)
        self.reads = plan_reads(list(device.tags), device.max_gap_registers,
                                device.max_gap_bits)
        self.backoff = Backoff(0.2, device.reconnect_max_s)
        self.polls = 0
        self.requests = 0  # read requests answered (metrics)
        self.errors = 0  # failed requests and connections (metrics)

    def _where(self) -> str:
        return self.device.where

    async def run(self) -> None:
        dev = self.device
        while True:
            client = make_client(dev)
            try:
                if not await asyncio.wait_for(client.connect(), dev.timeout_s * 2):
                    raise ConnectionError("connect failed")
                _set_nodelay(client)
                self.sink.connected(dev.id, True, self._where())
                self.rbe.forget()
                self.backoff.reset()
                await self._poll(client)
            except (ModbusException, OSError, TimeoutError) as exc:
                self.errors += 1
                self.sink.connected(dev.id, False, f"{self._where()}: {exc!r}")
            except Exception as exc:  # a driver must never die: log, back off, retry
                log.exception("%s: unexpected Modbus error", dev.id)
                self.sink.connected(dev.id, False, f"{self._where()}: {exc!r}")
            finally:
                client.close()
            await asyncio.sleep(self.backoff.next_delay())

    async def _poll(self, client: ModbusClient) -> None:
        dev = self.device
        next_t = time.monotonic()
        while True:
            for read in self.reads:
                await self._read(client, read)
            self.polls += 1
            next_t += dev.poll_s
            delay = next_t - time.monotonic()
            if delay < 0:  # overrun: don't try to catch up with a burst
                next_t = time.monotonic()
                delay = 0
            await asyncio.sleep(delay)

    def _mark_bad(self, read: Read, ts: int) -> None:
        """An exception response: the tags keep their last value, now with quality bad."""
        mono = time.monotonic_ns()
        for tag in read.tags:
            last = self.rbe.last(tag.published_name)
            if last is not None:
                sample = Sample(tag.published_name, ts, last[0], Quality.BAD)
                if self.rbe.should_publish(sample, mono):
                    self.sink.sample(self.device.id, sample)

    async def _read(self, client: ModbusClient, read: Read) -> None:
        dev = self.device
        fn = {"holding": client.read_holding_registers, "input": client.read_input_registers,
              "coil": client.read_coils, "discrete": client.read_discrete_inputs}[read.table]
        rr = await asyncio.wait_for(fn(read.start, count=read.count, device_id=dev.unit),
                                    dev.timeout_s * 1.5)
        ts = now_ns()
        if rr.isError():
            self.errors += 1
            log.warning("%s: %s %d+%d: %s", dev.id, read.table, read.start, read.count, rr)
            self._mark_bad(read, ts)
            return
        self.requests += 1
        values = rr.bits if read.table in BIT_TABLES else rr.registers
        mono = time.monotonic_ns()
        for tag in read.tags:
            sample = to_sample(tag, value_of(tag.reg, values, read.start), ts, Quality.GOOD)
            if sample is not None and self.rbe.should_publish(sample, mono):
                self.sink.sample(dev.id, sample)
