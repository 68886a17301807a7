"""The edge ModbusDriver against the project's Modbus simulator (simulators/modbus_machine):
every type x byte order of the simulator's type test bank in holding and input registers,
coils and discrete inputs, merged reads across gaps (requests counted by the simulator),
and Modbus RTU on a real serial line (two linked ptys from socat)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from services import free_port, require, stop
from test_edge_modbus import SPELT_64, one_poll

from shopfloor.contract import DevicePath, State
from shopfloor.demo.configs import modbus_tags as scenario_modbus_tags
from shopfloor.edge.config import ModbusDevice
from shopfloor.edge.modbus.codec import decode
from shopfloor.simulators.machine import Event, Kind
from shopfloor.simulators.modbus_machine import (
    BANK,
    BANK_BITS,
    ORDERS,
    SERIAL_LINE,
    ModbusMachine,
)
from shopfloor.simulators.scenario import MachineSpec

pytestmark = pytest.mark.timeout(60)

PATH = {"enterprise": "e", "site": "s", "area": "a", "line": "l"}


def machine(serial_port: str | None = None) -> ModbusMachine:
    return ModbusMachine(MachineSpec(
        path=DevicePath("e", "s", "a", "l", "plc"), protocol="modbus", host="127.0.0.1",
        port=free_port(), ideal_cycle_time_s=1, speed_factor=1, reject_rate=0, durations_s={},
        serial_port=serial_port))


def bank_tags() -> list[dict[str, Any]]:
    """A tag per bank value (64-bit orders in their 8-letter spelling) and per bank bit."""
    tags = []
    for e in BANK:
        reg: dict[str, Any] = {"table": e.table, "address": e.address, "type": e.type,
                               "word_order": SPELT_64[e.order] if len(e.registers) == 4
                               else e.order}
        if e.length:
            reg["length"] = e.length
        tags.append({"name": e.name, "register": reg})
    for table, bits in BANK_BITS.items():
        tags += [{"name": f"{table}_{a}", "register": {"table": table, "address": a,
                                                       "type": "bool"}} for a in bits]
    return tags


def expected_bank() -> dict[str, Any]:
    return {e.name: e.value for e in BANK} | {
        f"{table}_{a}": bit for table, bits in BANK_BITS.items() for a, bit in bits.items()}


def test_every_bank_value_reads_otherwise_in_any_other_byte_order():
    """The bank is a real check: a reader with a wrong byte order gets another value."""
    checked = 0
    for e in BANK:
        for order in ORDERS:
            other = type(e)(e.table, e.address, e.type, order, e.value, e.length)
            if other.registers != e.registers:  # 16-bit values/strings: 2 distinct orders
                assert decode(e.registers, e.type, order) != e.value, (e.name, order)
                checked += 1
    # per table: 3 types (16-bit, string) x 4 entries x 2, 6 types x 4 entries x 3
    assert checked == 2 * (3 * 4 * 2 + 6 * 4 * 3)


@pytest.mark.parametrize(("gap_registers", "gap_bits", "requests"), [
    # 136 bank registers per table with 1-register gaps: 2 reads of <= 125 per table;
    # coils/discrete inputs 100..115 and 130..131 (14 unused between): 1 read per table.
    (1, 14, {"ReadHoldingRegistersRequest": 2, "ReadInputRegistersRequest": 2,
             "ReadCoilsRequest": 1, "ReadDiscreteInputsRequest": 1}),
    # no reading through gaps: one read per bank value (36 per table), 2 per bit table
    (0, 0, {"ReadHoldingRegistersRequest": 36, "ReadInputRegistersRequest": 36,
            "ReadCoilsRequest": 2, "ReadDiscreteInputsRequest": 2}),
])
def test_bank_types_orders_bits_and_merged_reads(gap_registers, gap_bits, requests):
    asyncio.run(_bank(gap_registers, gap_bits, requests))


async def _bank(gap_registers: int, gap_bits: int, requests: dict[str, int]) -> None:
    sim = machine()
    await sim.start()
    try:
        dev = ModbusDevice.model_validate({
            "id": "plc", "protocol": "modbus", "host": "127.0.0.1", "port": sim.spec.port,
            "poll_s": 30, "path": PATH, "tags": bank_tags(),
            "max_gap_registers": gap_registers, "max_gap_bits": gap_bits})
        sink, driver = await one_poll(dev)
    finally:
        await sim.stop()
    got = {name: s.value for name, s in sink.samples.items()}
    expected = expected_bank()
    assert got == expected
    assert all(type(got[n]) is type(v) for n, v in expected.items())
    assert {s.quality for s in sink.samples.values()} == {"good"}
    assert dict(sim.requests) == requests
    assert driver.requests == sum(requests.values()) and driver.errors == 0


@pytest.fixture
def linked_ptys(tmp_path: Path):
    """Two pseudo-terminals joined back to back by socat: a serial cable on one box."""
    a, b = tmp_path / "ttyPLC", tmp_path / "ttyEDGE"
    proc = subprocess.Popen([require("socat"), f"pty,raw,echo=0,link={a}",
                             f"pty,raw,echo=0,link={b}"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not (a.exists() and b.exists()):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "socat made no ptys in 10 s"
            time.sleep(0.02)
        yield str(a), str(b)
    finally:
        stop(proc)


def test_rtu_over_a_serial_line(linked_ptys):
    asyncio.run(_rtu(*linked_ptys))


async def _rtu(plc_port: str, edge_port: str) -> None:
    sim = machine(serial_port=plc_port)
    await sim.start()
    try:
        await sim.apply(Event(0, Kind.STATE, State.PRODUCING, 0, 0, 61.5, product="FLANGE-2"), 0)
        await sim.apply(Event(1, Kind.PART, State.PRODUCING, 70_000, 3, 61.5, True), 0)
        picks = [e for e in BANK if e.order == "CDAB" and e.type in ("int32", "float64")]
        tags = scenario_modbus_tags(product=True) + [
            {"name": e.name, "register": {"table": e.table, "address": e.address,
                                          "type": e.type, "word_order": e.order}}
            for e in picks]
        tags.append({"name": "coil_100", "register": {"table": "coil", "address": 100,
                                                      "type": "bool"}})
        dev = ModbusDevice.model_validate({
            "id": "plc", "protocol": "modbus", "transport": "rtu", "unit": 1, "poll_s": 30,
            "serial": {"port": edge_port, "baudrate": SERIAL_LINE["baudrate"],
                       "parity": SERIAL_LINE["parity"]},
            "path": PATH, "tags": tags})
        sink, driver = await one_poll(dev)
    finally:
        await sim.stop()
    got = {name: s.value for name, s in sink.samples.items()}
    assert got == {"state": "PRODUCING", "part_count": 70_000, "reject_count": 3,
                   "spindle_load": 61.5, "product": "FLANGE-2",
                   "coil_100": BANK_BITS["coil"][100]} | {
        e.name: e.value for e in picks}
    assert dev.where == f"modbus-rtu://{edge_port}/1"
    # 0..10 (with the product) in one read, the picks in 2 holding + 2 input reads (too
    # far apart), the coil
    assert driver.requests == sim.requests.total() == 1 + 2 + 2 + 1
    assert driver.errors == 0
