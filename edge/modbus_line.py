"""A Modbus line: one connection shared by every device on it, one request at a time.

Devices on the same serial port (RS-485 multi-drop, transport ``rtu``) or behind the same
RTU-over-TCP gateway (``rtu_over_tcp``, same host:port) share one ``ModbusLine``: one
pymodbus client and a lock that serialises requests (a half-duplex bus carries one
request and its answer at a time; many gateways accept one TCP connection). Modbus TCP
devices each get a line of their own, as does any device alone on its line.

``lines_for(devices)`` builds the lines of a config, keyed by ``line_key``. A broken line
(port gone, TCP closed) is closed once by whichever driver sees it first (``fail``) and
re-opened once for all its devices (``open``), no sooner than the line's capped backoff
allows, however many drivers are waiting. On a shared line one unit not answering is
that unit's failure; every unit not answering is the line's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from .config import ModbusDevice
from .driver import Backoff

ModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient
T = TypeVar("T")


class LineDown(ConnectionError):
    """The line is closed (not yet re-opened): the request was not sent."""


def line_key(dev: ModbusDevice) -> str:
    """Devices with the same key share a line: the serial port, or the gateway's
    host:port for RTU over TCP; a Modbus TCP device is a line of its own."""
    if dev.transport == "rtu":
        assert dev.serial is not None
        return f"rtu:{dev.serial.port}"
    if dev.transport == "rtu_over_tcp":
        return f"rtu_over_tcp:{dev.host}:{dev.port}"
    return f"tcp:{dev.id}"


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


def set_timeout(client: ModbusClient, timeout_s: float) -> None:
    """The client's wait for an answer, per request (each device keeps its own)."""
    with contextlib.suppress(AttributeError):
        client.ctx.comm_params.timeout_connect = timeout_s


class ModbusLine:
    """One client and its lock for the devices of ``line_key``."""

    def __init__(self, key: str, devices: list[ModbusDevice]):
        self.key = key
        self.devices = devices
        self.first = devices[0]  # its serial settings/host name the line (validated alike)
        self.lock = asyncio.Lock()  # one request on the line at a time
        self.client: ModbusClient | None = None
        self.opens = 0  # successful (re)opens (tests, metrics)
        self.backoff = Backoff(0.2, min(d.reconnect_max_s for d in devices))
        self._open_lock = asyncio.Lock()
        self._unanswered: set[int] = set()  # units that timed out since the last answer
        self._not_before = 0.0  # monotonic time of the next allowed open attempt

    @property
    def shared(self) -> bool:
        return len(self.devices) > 1

    @property
    def up(self) -> bool:
        return self.client is not None and self.client.connected

    async def open(self) -> ModbusClient:
        """The open client; opens it (after the backoff since the last failure) if not."""
        async with self._open_lock:
            if self.client is not None and self.up:
                return self.client
            self.close()
            delay = self._not_before - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            client = make_client(self.first)
            timeout = max(d.timeout_s for d in self.devices)
            try:
                ok = await asyncio.wait_for(client.connect(), timeout * 2)
            except BaseException:
                client.close()
                self._not_before = time.monotonic() + self.backoff.next_delay()
                raise
            if not ok:
                client.close()
                self._not_before = time.monotonic() + self.backoff.next_delay()
                raise ConnectionError("connect failed")
            _set_nodelay(client)
            self.client = client
            self._unanswered.clear()
            self.opens += 1
            self.backoff.reset()
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

    async def request(self, client: ModbusClient, unit: int, timeout_s: float,
                      call: Callable[[ModbusClient], Awaitable[T]]) -> T:
        """``call(client)`` alone on the line, bounded by the device's timeout; LineDown
        if the line was closed or re-opened since ``client`` was handed out.

        Shared line: a unit not answering is that unit's failure (pymodbus's own rule,
        closing a TCP connection after a few unanswered requests in a row, is reset on
        every request); when every unit on the line has timed out since the last answer,
        the line is taken for broken (a half-open gateway) and closed."""
        async with self.lock:
            if client is not self.client or not client.connected:
                raise LineDown(f"line {self.key} is down")
            set_timeout(client, timeout_s)
            if self.shared:
                with contextlib.suppress(AttributeError):
                    client.ctx.count_until_disconnect = client.ctx.max_until_disconnect
            try:
                result = await asyncio.wait_for(call(client), timeout_s * 1.5)
            except (TimeoutError, ModbusIOException):
                if client is self.client:  # not a line closed meanwhile
                    self._unanswered.add(unit)
                    if self.shared and len(self._unanswered) >= len(self.devices):
                        self.fail(client)
                raise
            self._unanswered.clear()
            return result


def lines_for(devices: Iterable[ModbusDevice]) -> dict[str, ModbusLine]:
    """One line per ``line_key``, holding its devices in config order."""
    groups: dict[str, list[ModbusDevice]] = {}
    for dev in devices:
        groups.setdefault(line_key(dev), []).append(dev)
    return {key: ModbusLine(key, devs) for key, devs in groups.items()}
