"""Modbus driver (TCP, RTU over TCP, RTU serial): poll registers, report by exception.

``ModbusDriver(device, sink, heartbeat_s, line).run()`` polls every ``poll_s`` until
cancelled, reading the device's tags in the requests ``plan.plan_reads`` merged them into
and decoding them with ``codec.value_of``. Each device runs in its own task with its own
poll period and timeouts; devices on one serial line or RTU-over-TCP gateway share its
connection (``line.ModbusLine``, built by ``modbus_drivers``), one request at a time, so
a silent unit costs the line only its own timeout. A broken connection is re-opened with
capped exponential backoff (``driver.SessionDriver``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from pymodbus.exceptions import ModbusException

from shopfloor.contract import Quality

from ..driver import Backoff, CheckResult, DriverStats, SessionDriver, Sink, now_ns, short_error
from ..mapping import ReportByException, to_sample
from .client import ModbusClient, read_request, response_values
from .codec import value_of
from .config import ModbusDevice
from .line import ModbusLine, line_key, lines_for
from .plan import Read, plan_reads

log = logging.getLogger(__name__)


def modbus_drivers(devices: Iterable[ModbusDevice], sink: Sink,
                   heartbeat_s: float) -> list[ModbusDriver]:
    """The devices' drivers, those on one line sharing it (in the devices' order)."""
    devices = list(devices)
    lines = lines_for(devices)
    return [ModbusDriver(d, sink, heartbeat_s, lines[line_key(d)]) for d in devices]


class ModbusDriver(SessionDriver):
    """Polls one device (unit) over its line; ``line`` is shared with the other devices on
    the same serial port / RTU-over-TCP gateway (default: a line of its own)."""

    protocol_name = "Modbus"
    transient = (ModbusException, OSError, TimeoutError)

    def __init__(self, device: ModbusDevice, sink: Sink, heartbeat_s: float,
                 line: ModbusLine | None = None):
        super().__init__(device.id, device.where, sink, Backoff(0.2, device.reconnect_max_s))
        self.device = device
        self.line = line or ModbusLine(line_key(device), [device])
        self.rbe = ReportByException(heartbeat_s)
        self.plan = plan_reads(list(device.tags), device.max_gap_registers,
                               device.max_gap_bits)
        self.polls = 0
        self.requests = 0  # read requests answered (metrics)
        self._refusals: dict[tuple[str, int], str] = {}  # read refused -> why (logged once)

    def stats(self) -> DriverStats:
        return DriverStats(self.requests, self.errors, self.up)

    async def run(self) -> None:
        async with self.line.hold():  # the line closes when its last driver stops
            await super().run()

    async def session(self) -> None:
        """One session on the line: open it (or share it open), poll until a failure.
        A failure closes the line, to be re-opened after its backoff, unless it is this
        unit's alone (a shared line still up, the unit silent): the others poll on."""
        client: ModbusClient | None = None
        try:
            client = await self.line.open()
            self.rbe.forget()
            await self._poll(client, now_ns())
        except Exception as exc:
            if client is not None and not self.line.unit_failed(client, exc):
                self.line.fail(client)
            raise

    async def _poll(self, client: ModbusClient, since_ns: int) -> None:
        """Poll until the connection fails. The device is up (and the backoff starts
        afresh) only once it has answered a whole poll: a TCP connect alone (a hung PLC, a
        gateway whose serial side is dead) is not a device that answers."""
        next_t = time.monotonic()
        while True:
            for read in self.plan:
                await self._read(client, read)
            if not self.up:
                self.opened(since_ns)
            self.polls += 1
            next_t += self.device.poll_s
            delay = next_t - time.monotonic()
            if delay < 0:  # overrun: don't try to catch up with a burst
                next_t = time.monotonic()
                delay = 0
            await asyncio.sleep(delay)

    def _mark_bad(self, read: Read, ts: int, why: str) -> None:
        """A read refused: its tags keep their last value (else ``why``), quality bad, as a
        change once and then per heartbeat."""
        mono = time.monotonic_ns()
        for tag in read.tags:
            last = self.rbe.last(tag.published_name)
            sample = to_sample(tag, why if last is None else last[0], ts, Quality.BAD)
            if sample is not None and self.rbe.should_publish(sample, mono):
                self.sink.sample(self.device_id, sample)

    def _refused(self, read: Read, why: str) -> None:
        """Logged once per change of the reason (not every poll), and when it answers."""
        key = (read.table, read.start)
        if self._refusals.get(key) != why:
            log.warning("%s: %s %d+%d: %s (published bad until it answers)", self.device_id,
                        read.table, read.start, read.count, why)
            self._refusals[key] = why

    async def _read(self, client: ModbusClient, read: Read) -> None:
        rr = await self.line.request(client, self.device,
                                     lambda c: read_request(c, self.device.unit, read))
        ts = now_ns()
        values = None if rr.isError() else response_values(read, rr)
        if values is None or len(values) < read.count:
            self.errors += 1
            why = (f"exception {rr.exception_code}" if values is None  # type: ignore[attr-defined]
                   else f"short response: {len(values)} of {read.count}")
            self._refused(read, why)
            self._mark_bad(read, ts, why)
            return
        if self._refusals.pop((read.table, read.start), None) is not None:
            log.info("%s: %s %d+%d answers again", self.device_id, read.table, read.start,
                     read.count)
        self.requests += 1
        mono = time.monotonic_ns()
        for tag in read.tags:
            sample = to_sample(tag, value_of(tag.reg, values, read.start), ts, Quality.GOOD)
            if sample is not None and self.rbe.should_publish(sample, mono):
                self.sink.sample(self.device_id, sample)

    async def check(self) -> CheckResult:
        """Reachable: the line opened and, on a shared line, the unit answered (values or
        an exception response). The devices of a shared line check over one connection,
        one request at a time."""
        dev = self.device
        row = CheckResult(dev.id, f"modbus/{dev.transport}", False, 0, len(dev.tags))
        async with self.line.hold():
            await self._check(row)
        return row

    async def _check(self, row: CheckResult) -> None:
        dev = self.device
        try:
            client = await self.line.open()
            row.reachable = not self.line.shared
            for read in self.plan:
                rr = await self.line.request(client, dev,
                                             lambda c, r=read: read_request(c, dev.unit, r))
                row.reachable = True
                if rr.isError():
                    row.error = row.error or f"{read.table} {read.start}+{read.count}: {rr}"
                    continue
                values = response_values(read, rr)
                for tag in read.tags:
                    value_of(tag.reg, values, read.start)
                    row.tags_read += 1
        except Exception as exc:  # report, never raise: the table is the output
            row.error = row.error or short_error(exc)
