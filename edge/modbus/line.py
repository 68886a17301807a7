"""Shared Modbus lines: one connection for the devices on one serial port (RS-485
multi-drop) or behind one TCP host:port (an RTU-over-TCP or Modbus TCP gateway to a
serial bus: one TCP connection carrying the requests of several unit ids, one at a time;
many gateways accept only one connection, and their bus answers one request at a time
anyway). A device alone on its port gets a line of its own.

``lines_for(devices)`` builds the lines of a config, keyed by ``line_key``. Requests go
one at a time (``request``, under the line's lock), each bounded by its device's own
timeout. A broken line (port gone, TCP closed) is closed once by whichever driver sees
it first (``fail``) and re-opened once for all its devices (``open``), no sooner than the
line's capped backoff allows. On a shared line one unit not answering is that unit's
failure; every unit not answering since the last answer is the line's (a half-open
gateway).

Every wait here has a deadline: the lock of a request (the others' requests ahead of it),
the open (another driver's open ahead of it, the backoff, the connect), the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

from pymodbus.exceptions import ModbusIOException

from ..driver import Backoff, raise_if_cancelled
from .client import ModbusClient, connect, modbus_client
from .config import ModbusDevice

T = TypeVar("T")


class LineDown(ConnectionError):
    """The line was closed (or re-opened) since the client was handed out: not sent."""


def line_key(dev: ModbusDevice) -> str:
    """Devices with the same key share a line: the serial port, or the host:port (one
    transport each, validated)."""
    if dev.transport == "rtu":
        assert dev.serial is not None
        return f"rtu:{dev.serial.port}"
    return f"{dev.transport}:{dev.host}:{dev.port}"


def set_timeout(client: ModbusClient, timeout_s: float) -> None:
    """pymodbus's wait for an answer, per request (each device keeps its own)."""
    with contextlib.suppress(AttributeError):
        client.ctx.comm_params.timeout_connect = timeout_s


class ModbusLine:
    """One client, its request lock and its backoff for the devices of ``line_key``."""

    def __init__(self, key: str, devices: list[ModbusDevice]):
        self.key = key
        self.devices = devices
        self.first = devices[0]  # its serial settings/host name the line (validated alike)
        self.client: ModbusClient | None = None
        self.opens = 0  # successful (re)opens (tests, metrics)
        self.backoff = Backoff(0.2, min(d.reconnect_max_s for d in devices))
        self._lock = asyncio.Lock()  # one request on the line at a time
        self._open_lock = asyncio.Lock()  # one open at a time
        self._unanswered: set[int] = set()  # units that timed out since the last answer
        self._units = len({d.unit for d in devices})
        self._not_before = 0.0  # monotonic time of the next allowed open attempt
        self._holders = 0  # drivers running or checking on the line (the last one closes)
        slowest = max(d.timeout_s for d in devices)
        # one open: the backoff, then the connect (2 x timeout); a caller may wait for one
        # other open ahead of it (which failed), then do its own
        self._open_bound_s = 2 * (self.backoff.cap_s + 2 * slowest) + 1.0
        # the lock: at most one request of every other device ahead (FIFO), 1.5 x timeout
        self._lock_bound_s = 1.5 * sum(d.timeout_s for d in devices) + 1.0

    @property
    def shared(self) -> bool:
        return len(self.devices) > 1

    @property
    def up(self) -> bool:
        return self.client is not None and self.client.connected

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Around a driver's run or check: the line is closed when the last one leaves."""
        self._holders += 1
        try:
            yield
        finally:
            self._holders -= 1
            if not self._holders:
                self.close()

    async def open(self) -> ModbusClient:
        """The open client; opens it (after the backoff since the last failure) if not."""
        async with asyncio.timeout(self._open_bound_s), self._open_lock:
            if self.client is not None and self.up:
                return self.client
            self.close()
            delay = self._not_before - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            client = modbus_client(self.first)
            set_timeout(client, max(d.timeout_s for d in self.devices))
            try:
                await connect(client, max(d.timeout_s for d in self.devices),
                              self.first.where)
            except BaseException:
                client.close()
                self._not_before = time.monotonic() + self.backoff.next_delay()
                raise
            self.client = client
            self._unanswered.clear()
            self.opens += 1
            # a connect alone says nothing of the units: each driver's own backoff starts
            # afresh only once its unit answered a whole poll
            self.backoff.reset()
        raise_if_cancelled()
        return client

    def fail(self, client: ModbusClient) -> None:
        """``client`` broke: close the line if it still is that client (so a failure seen
        by several drivers closes, and later re-opens, the line once)."""
        if client is self.client:
            self.close()
            self._not_before = time.monotonic() + self.backoff.next_delay()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def unit_failed(self, client: ModbusClient | None, exc: BaseException) -> bool:
        """Whether ``exc`` is the unit's failure, not the line's: on a shared line that is
        still up with ``client``, a unit that did not answer (in time)."""
        return (self._units > 1 and client is not None and client is self.client
                and client.connected and isinstance(exc, TimeoutError | ModbusIOException))

    async def request(self, client: ModbusClient, dev: ModbusDevice,
                      call: Callable[[ModbusClient], Awaitable[T]]) -> T:
        """``call(client)`` alone on the line, bounded by the device's timeout; LineDown
        if the line was closed or re-opened since ``client`` was handed out.

        Shared line: pymodbus's own rule (closing a TCP connection after a few unanswered
        requests in a row, whichever units they were for) is reset on every request; when
        every unit on the line has timed out since the last answer, the line is taken for
        broken and closed."""
        async with asyncio.timeout(self._lock_bound_s):
            await self._lock.acquire()
        try:
            if client is not self.client or not client.connected:
                raise LineDown(f"line {self.key} is down")
            set_timeout(client, dev.timeout_s)
            if self.shared:
                with contextlib.suppress(AttributeError):
                    client.ctx.count_until_disconnect = client.ctx.max_until_disconnect
            try:
                async with asyncio.timeout(dev.timeout_s * 1.5):
                    result = await call(client)
            except (TimeoutError, ModbusIOException):
                if client is self.client:  # not a line closed meanwhile
                    self._unanswered.add(dev.unit)
                    if self.shared and len(self._unanswered) >= self._units:
                        self.fail(client)
                raise
            self._unanswered.clear()
        finally:
            self._lock.release()
        raise_if_cancelled()  # pymodbus's wait_for may have returned instead
        return result


def lines_for(devices: Iterable[ModbusDevice]) -> dict[str, ModbusLine]:
    """One line per ``line_key``, holding its devices in config order."""
    groups: dict[str, list[ModbusDevice]] = {}
    for dev in devices:
        groups.setdefault(line_key(dev), []).append(dev)
    return {key: ModbusLine(key, devs) for key, devs in groups.items()}
