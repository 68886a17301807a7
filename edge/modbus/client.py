"""The pymodbus side: ``modbus_client(device)`` for the device's transport, ``connect``,
and ``read_request(client, unit, read)``, one read request by the table's function code
(``READ_FUNCTIONS``), sent over a line (``line.ModbusLine.request``, which bounds it)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.pdu import ModbusPDU

from ..driver import raise_if_cancelled
from .config import BIT_TABLES, ModbusDevice
from .plan import Read

ModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient

# Each table's read function (Modbus function codes 1 to 4) as a pymodbus client method.
READ_FUNCTIONS = {
    "coil": ModbusClientMixin.read_coils,  # 0x01 Read Coils
    "discrete": ModbusClientMixin.read_discrete_inputs,  # 0x02 Read Discrete Inputs
    "holding": ModbusClientMixin.read_holding_registers,  # 0x03 Read Holding Registers
    "input": ModbusClientMixin.read_input_registers,  # 0x04 Read Input Registers
}


def modbus_client(dev: ModbusDevice) -> ModbusClient:
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


async def connect(client: ModbusClient, timeout_s: float, where: str) -> None:
    """Open the client's connection within ``2 * timeout_s`` (TCP_NODELAY on a socket);
    ConnectionError if not. ``asyncio.timeout``, not ``wait_for``: Python 3.11's
    ``wait_for`` can swallow a cancel (``driver.raise_if_cancelled``)."""
    async with asyncio.timeout(timeout_s * 2):
        ok = await client.connect()
    raise_if_cancelled()  # pymodbus's own wait_for may have returned instead
    if not ok:
        raise ConnectionError(f"cannot connect to {where}")
    _set_nodelay(client)


def _set_nodelay(client: ModbusClient) -> None:
    """TCP_NODELAY: a poll is a small request waiting for its answer (no Nagle delay)."""
    with contextlib.suppress(Exception):
        sock = client.ctx.transport.get_extra_info("socket")  # type: ignore[union-attr]
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def read_request(client: ModbusClient, unit: int, read: Read) -> Awaitable[ModbusPDU]:
    """Send one read request; awaited, its answer (an exception response is returned:
    ``isError()``; pymodbus's timeout or a broken connection raises)."""
    return READ_FUNCTIONS[read.table](client, read.start, count=read.count,  # type: ignore[return-value]
                                      device_id=unit)


def response_values(read: Read, response: ModbusPDU) -> list[int] | list[bool]:
    """The registers or bits of a successful response."""
    return response.bits if read.table in BIT_TABLES else response.registers
