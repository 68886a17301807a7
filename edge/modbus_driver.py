"""Modbus driver (TCP, RTU over TCP, RTU serial): poll registers, report by exception.

``ModbusDriver(device, sink, heartbeat_s).run()`` polls every ``poll_s`` until cancelled.
``plan_reads`` sorts each table's tags and merges them into requests of at most 125
registers / 2000 bits, reading through gaps up to ``max_gap_*``; ``decode`` turns the
registers into values by type and byte order. Each device runs in its own task with its
own poll period and timeouts; devices on one serial line or RTU-over-TCP gateway share
its connection (``modbus_line.ModbusLine``), one request at a time, so a silent unit
costs the line only its own timeout. A broken connection is re-opened with capped
exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from shopfloor.contract import Quality, Sample

from .config import BIT_TABLES, ModbusDevice, ModbusTag, Register
from .driver import Backoff, Sink, now_ns
from .mapping import ReportByException, to_sample
from .modbus_line import LineDown, ModbusClient, ModbusLine, line_key, make_client

__all__ = ["ModbusDriver", "decode", "make_client", "plan_reads", "value_of"]

log = logging.getLogger(__name__)

MAX_REGISTERS = 125  # per read request (Modbus limit for registers)
MAX_BITS = 2000  # per read request (coils / discrete inputs)

_FORMATS = {"uint16": "H", "int16": "h", "uint32": "I", "int32": "i", "float32": "f",
            "uint64": "Q", "int64": "q", "float64": "d"}

Value = int | float | bool | str


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


class ModbusDriver:
    """Polls one device (unit) over its line; ``line`` is shared with the other devices on
    the same serial port / RTU-over-TCP gateway (default: a line of its own)."""

    def __init__(self, device: ModbusDevice, sink: Sink, heartbeat_s: float,
                 line: ModbusLine | None = None):
        self.device = device
        self.sink = sink
        self.line = line or ModbusLine(line_key(device), [device])
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
        """Alone on its line: connect, poll; any failure closes the line, which re-opens
        after the backoff. On a shared line a failure closes the line only if the line
        itself broke (transport lost); a unit that does not answer is retried after its
        own backoff, the line stays open for the others."""
        dev, line = self.device, self.line
        while True:
            client: ModbusClient | None = None
            try:
                client = await line.open()
                if not line.shared:
                    self.sink.connected(dev.id, True, self._where())
                self.rbe.forget()
                await self._poll(client)
            except (ModbusException, OSError, TimeoutError) as exc:
                self.errors += 1
                self.sink.connected(dev.id, False, f"{self._where()}: {exc!r}")
                if self._unit_failed(client, exc):
                    await asyncio.sleep(self.backoff.next_delay())
                    continue
            except Exception as exc:  # a driver must never die: log, back off, retry
                log.exception("%s: unexpected Modbus error", dev.id)
                self.sink.connected(dev.id, False, f"{self._where()}: {exc!r}")
            if client is not None:
                line.fail(client)

    def _unit_failed(self, client: ModbusClient | None, exc: BaseException) -> bool:
        """On a shared line that is still up, a timeout or an unanswered request is this
        unit's failure, not the line's."""
        return (self.line.shared and client is not None and client is self.line.client
                and client.connected and not isinstance(exc, LineDown))

    async def _poll(self, client: ModbusClient) -> None:
        dev = self.device
        next_t = time.monotonic()
        answered = not self.line.shared  # shared line: "connected" once the unit answers
        while True:
            for read in self.reads:
                await self._read(client, read)
            if not answered:
                answered = True
                self.backoff.reset()
                self.sink.connected(dev.id, True, self._where())
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

        def call(c: ModbusClient) -> Awaitable[ModbusPDU]:
            fn = {"holding": c.read_holding_registers, "input": c.read_input_registers,
                  "coil": c.read_coils, "discrete": c.read_discrete_inputs}[read.table]
            return fn(read.start, count=read.count, device_id=dev.unit)

        rr = await self.line.request(client, dev.unit, dev.timeout_s, call)
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
