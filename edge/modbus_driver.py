"""Modbus TCP driver: poll a device's registers, report samples by exception.

``ModbusDriver(device, sink, heartbeat_s).run()`` polls every ``poll_s`` until cancelled,
reading each run of contiguous registers of a table in one request, decoding each tag by
type and word order, and reconnecting with capped exponential backoff. Each device runs
in its own task with its own timeouts, so a silent device never stalls the others.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from shopfloor.contract import Quality

from .config import ModbusDevice, ModbusTag, Register
from .driver import Backoff, Sink, now_ns
from .mapping import ReportByException, to_sample

log = logging.getLogger(__name__)

MAX_REGISTERS = 125  # per read request (Modbus limit for registers)
MAX_BITS = 2000  # per read request (coils / discrete inputs)

_FORMATS = {"uint16": "H", "int16": "h", "uint32": "I", "int32": "i", "float32": "f",
            "uint64": "Q", "int64": "q", "float64": "d"}


def decode(registers: list[int], type_: str, word_order: str = "ABCD") -> int | float | bool:
    """Decode 16-bit registers (as read, lowest address first) into a value.

    ``word_order`` names the bytes of a 32-bit value as they sit in the registers, A most
    significant: ABCD big-endian, CDAB low word first, BADC bytes swapped within each word,
    DCBA little-endian. Longer values extend the same rule to every word.
    """
    if type_ == "bool":
        return bool(registers[0])
    words = list(registers)
    if word_order in ("CDAB", "DCBA"):
        words.reverse()
    raw = b"".join((w & 0xFFFF).to_bytes(2, "big") for w in words)
    if word_order in ("BADC", "DCBA"):
        raw = b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))
    return struct.unpack(">" + _FORMATS[type_], raw)[0]


@dataclass
class Read:
    """One request: ``count`` registers (or bits) of ``table`` from ``start``."""

    table: str
    start: int
    count: int
    tags: list[ModbusTag] = field(default_factory=list)


def plan_reads(tags: list[ModbusTag]) -> list[Read]:
    """Group tags into as few requests as possible: contiguous or overlapping ranges merge."""
    reads: list[Read] = []
    by_table: dict[str, list[ModbusTag]] = {}
    for tag in tags:
        by_table.setdefault(tag.reg.table, []).append(tag)
    for table, group in by_table.items():
        limit = MAX_BITS if table in ("coil", "discrete") else MAX_REGISTERS
        group.sort(key=lambda t: t.reg.address)
        cur: Read | None = None
        for tag in group:
            reg = tag.reg
            end = reg.address + reg.words
            if cur is not None and reg.address <= cur.start + cur.count \
                    and max(end, cur.start + cur.count) - cur.start <= limit:
                cur.count = max(cur.count, end - cur.start)
                cur.tags.append(tag)
            else:
                cur = Read(table, reg.address, reg.words, [tag])
                reads.append(cur)
    return reads


def _value(reg: Register, values: list[int] | list[bool], start: int) -> int | float | bool:
    off = reg.address - start
    if reg.table in ("coil", "discrete"):
        return bool(values[off])
    return decode([int(v) for v in values[off:off + reg.words]], reg.type, reg.word_order)


class ModbusDriver:
    def __init__(self, device: ModbusDevice, sink: Sink, heartbeat_s: float):
        self.device = device
        self.sink = sink
        self.rbe = ReportByException(heartbeat_s)
        self.reads = plan_reads(list(device.tags))
        self.backoff = Backoff(0.2, device.reconnect_max_s)
        self.polls = 0

    def _where(self) -> str:
        return f"modbus://{self.device.host}:{self.device.port}/{self.device.unit}"

    async def run(self) -> None:
        dev = self.device
        while True:
            client = AsyncModbusTcpClient(dev.host, port=dev.port, timeout=dev.timeout_s,
                                          retries=0, reconnect_delay=0)
            try:
                if not await asyncio.wait_for(client.connect(), dev.timeout_s * 2):
                    raise ConnectionError("connect failed")
                self.sink.connected(dev.id, True, self._where())
                self.rbe.forget()
                self.backoff.reset()
                await self._poll(client)
            except (ModbusException, OSError, TimeoutError) as exc:
                self.sink.connected(dev.id, False, f"{self._where()}: {exc!r}")
            except Exception as exc:  # a driver must never die: log, back off, retry
                log.exception("%s: unexpected Modbus error", dev.id)
                self.sink.connected(dev.id, False, f"{self._where()}: {exc!r}")
            finally:
                client.close()
            await asyncio.sleep(self.backoff.next_delay())

    async def _poll(self, client: AsyncModbusTcpClient) -> None:
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

    async def _read(self, client: AsyncModbusTcpClient, read: Read) -> None:
        dev = self.device
        fn = {"holding": client.read_holding_registers, "input": client.read_input_registers,
              "coil": client.read_coils, "discrete": client.read_discrete_inputs}[read.table]
        rr = await asyncio.wait_for(fn(read.start, count=read.count, device_id=dev.unit),
                                    dev.timeout_s * 1.5)
        ts = now_ns()
        if rr.isError():
            log.warning("%s: %s %d+%d: %s", dev.id, read.table, read.start, read.count, rr)
            return
        values = rr.bits if read.table in ("coil", "discrete") else rr.registers
        mono = time.monotonic_ns()
        for tag in read.tags:
            sample = to_sample(tag, _value(tag.reg, values, read.start), ts, Quality.GOOD)
            if sample is not None and self.rbe.should_publish(sample, mono):
                self.sink.sample(dev.id, sample)
