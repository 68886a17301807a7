"""One simulated PLC as a pymodbus Modbus TCP server (unit id 1, holding registers).

| address | content | type |
|---|---|---|
| 0 | device state code | uint16 |
| 1-2 | part count (good + reject, cumulative) | uint32, word order ABCD |
| 3-4 | reject count (cumulative) | uint32 ABCD |
| 5-6 | spindle load % | float32 ABCD |
"""

from __future__ import annotations

import logging
import struct

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .codes import DEVICE_STATE_CODES
from .machine import Event, Kind
from .scenario import MachineSpec

UNIT_ID = 1
REG_STATE = 0
REG_PART_COUNT = 1
REG_REJECT_COUNT = 3
REG_SPINDLE_LOAD = 5
REGISTER_COUNT = 7
_WRITE_MULTIPLE = 16  # function code used to address the holding registers

logging.getLogger("pymodbus").setLevel(logging.WARNING)


def uint32_words(value: int) -> list[int]:
    """A uint32 as two registers, high word first (ABCD)."""
    return [(value >> 16) & 0xFFFF, value & 0xFFFF]


def float32_words(value: float) -> list[int]:
    """A float32 as two registers, big-endian bytes and words (ABCD)."""
    return list(struct.unpack(">HH", struct.pack(">f", value)))


def registers(ev: Event) -> list[int]:
    """The full register image (0..6) of a machine snapshot."""
    return ([DEVICE_STATE_CODES[ev.state]] + uint32_words(ev.part_count)
            + uint32_words(ev.reject_count) + float32_words(ev.spindle_load))


class ModbusMachine:
    """Serves one machine's holding registers; ``apply`` writes an event's changes."""

    def __init__(self, spec: MachineSpec):
        self.spec = spec
        self.url = f"modbus://{spec.host}:{spec.port}"
        self._device = SimDevice(
            id=UNIT_ID,
            simdata=[SimData(0, count=REGISTER_COUNT, values=0, datatype=DataType.REGISTERS)])
        self._server: ModbusTcpServer | None = None

    async def start(self) -> None:
        """Listen; returns once the port accepts clients."""
        self._server = ModbusTcpServer(self._device, address=(self.spec.host, self.spec.port))
        await self._server.serve_forever(background=True)

    async def _set(self, address: int, values: list[int]) -> None:
        assert self._server is not None, "start() first"
        err = await self._server.context.async_setValues(
            UNIT_ID, _WRITE_MULTIPLE, address, values)
        if err is not None:
            raise RuntimeError(f"{self.spec.id}: cannot set registers {address}: {err!r}")

    async def apply(self, ev: Event, ts_ns: int) -> None:
        del ts_ns  # Modbus carries no timestamps: the reader stamps its read time
        if ev.kind is Kind.STATE:
            await self._set(REG_STATE, [DEVICE_STATE_CODES[ev.state]])
            await self._set(REG_SPINDLE_LOAD, float32_words(ev.spindle_load))
        elif ev.kind is Kind.PART:
            # One write for both counters, so a reader never sees them out of step.
            await self._set(REG_PART_COUNT,
                            uint32_words(ev.part_count) + uint32_words(ev.reject_count))
        else:
            await self._set(REG_SPINDLE_LOAD, float32_words(ev.spindle_load))

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
