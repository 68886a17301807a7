"""Modbus driver against an in-test pymodbus server on loopback (one that can fail on
demand; against the project's simulator: test_edge_modbus_sim.py): every type x byte
order, strings, bits, scale/offset, all four tables (function codes 1-4), merged reads
across gaps and the 125-register/2000-bit limits (requests counted on the server),
exception responses, Modbus TCP and RTU framing over TCP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from services import free_port

from shopfloor.contract import Sample
from shopfloor.edge.config import ModbusDevice
from shopfloor.edge.modbus.driver import ModbusDriver
from shopfloor.simulators.modbus_machine import ORDERS, encode

pytestmark = pytest.mark.timeout(60)

# The 64-bit byte orders as the config also accepts them, spelt over eight bytes.
SPELT_64 = {"ABCD": "ABCDEFGH", "CDAB": "GHEFCDAB", "BADC": "BADCFEHG", "DCBA": "HGFEDCBA"}
TYPES = {"int16": -12345, "uint16": 0xBEEF, "int32": -123456789, "uint32": 0xDEADBEEF,
         "int64": -(2**40) - 7, "uint64": 2**63 + 0x0102030405, "float32": 42.25,
         "float64": -1234.5e-3}


class Server:
    """Coils, discrete inputs, holding and input registers of unit 1; counts read requests."""

    def __init__(self, framer: FramerType = FramerType.SOCKET):
        self.port = free_port()
        self.framer = framer
        self.requests: list[str] = []
        self.fail = False  # answer every read with an exception (IllegalAddress)

    def _trace(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            self.requests.append(type(pdu).__name__)
            if self.fail:
                pdu.address = 65000  # outside the register block
        return pdu

    async def __aenter__(self) -> Server:
        blocks = ([SimData(0, count=2200, values=False, datatype=DataType.BITS)],
                  [SimData(0, count=64, values=False, datatype=DataType.BITS)],
                  [SimData(0, count=600, values=0, datatype=DataType.REGISTERS)],
                  [SimData(0, count=64, values=0, datatype=DataType.REGISTERS)])
        self.server = ModbusTcpServer(SimDevice(id=1, simdata=blocks), framer=self.framer,
                                      address=("127.0.0.1", self.port), trace_pdu=self._trace)
        await self.server.serve_forever(background=True)
        return self

    async def set(self, fc: int, address: int, values: list[Any]) -> None:
        """fc 15 coils, 2 discrete inputs, 16 holding, 4 input registers."""
        assert await self.server.context.async_setValues(1, fc, address, values) is None

    async def __aexit__(self, *exc: object) -> None:
        await self.server.shutdown()


class Sink:
    def __init__(self) -> None:
        self.samples: dict[str, Sample] = {}

    def sample(self, device: str, sample: Sample) -> None:
        self.samples[sample.tag] = sample

    def connected(self, device: str, up: bool, detail: str, since_ns: int) -> None:
        pass


def device(port: int, tags: list[dict], transport: str = "tcp", **kw: Any) -> ModbusDevice:
    return ModbusDevice.model_validate({
        "id": "m", "protocol": "modbus", "transport": transport, "host": "127.0.0.1",
        "port": port, "poll_s": 30, "timeout_s": 1.0,
        "path": {"enterprise": "e", "site": "s", "area": "a", "line": "l"}, "tags": tags, **kw})


async def one_poll(dev: ModbusDevice) -> tuple[Sink, ModbusDriver]:
    """Run the driver until it has completed exactly one poll (the next is 30 s away)."""
    sink = Sink()
    driver = ModbusDriver(dev, sink, heartbeat_s=60)
    task = asyncio.create_task(driver.run())
    try:
        async with asyncio.timeout(10):
            while driver.polls < 1:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return sink, driver


@pytest.mark.parametrize("transport", ["tcp", "rtu_over_tcp"])
def test_every_type_and_byte_order_in_all_four_tables(transport):
    asyncio.run(_every_type(transport))


async def _every_type(transport: str) -> None:
    framer = FramerType.SOCKET if transport == "tcp" else FramerType.RTU
    async with Server(framer) as srv:
        tags, expected, addr = [], {}, 0
        for type_, value in TYPES.items():
            for order in ORDERS:
                regs = encode(value, type_, order)
                await srv.set(16, addr, regs)
                name = f"{type_}_{order}"
                spelt = SPELT_64[order] if len(regs) == 4 else order
                tags.append({"name": name, "register": {
                    "address": addr, "type": type_, "word_order": spelt}})
                expected[name] = value
                addr += len(regs) + 1  # one unused register between tags
        await srv.set(16, 200, [0x5052, 0x4553, 0x532D, 0x3031, 0])  # "PRESS-01" ABCD
        await srv.set(16, 210, [0x5250, 0x5345, 0x2D53, 0x3130])  # "PRESS-01" BADC
        await srv.set(16, 220, [(-123) & 0xFFFF, 0b1010])
        await srv.set(15, 3, [True, False, True])
        await srv.set(2, 5, [True, True, False])
        await srv.set(4, 10, encode(3.5, "float32", "CDAB") + encode(7, "uint16"))
        tags += [
            {"name": "s_abcd", "register": {"address": 200, "type": "string", "length": 5}},
            {"name": "s_badc", "register": {"address": 210, "type": "string", "length": 4,
                                            "word_order": "BADC"}},
            {"name": "scaled", "register": {"address": 220, "type": "int16", "scale": 0.1,
                                            "offset": 10}},
            {"name": "bit1", "register": {"address": 221, "type": "bit", "bit": 1}},
            {"name": "bit2", "register": {"address": 221, "type": "bool", "bit": 2}},
            {"name": "coil3", "register": {"table": "coil", "address": 3, "type": "bool"}},
            {"name": "coil4", "register": {"table": "coil", "address": 4, "type": "bool"}},
            {"name": "coil5", "register": {"table": "coil", "address": 5, "type": "bit"}},
            {"name": "di5", "register": {"table": "discrete", "address": 5, "type": "bool"}},
            {"name": "di7", "register": {"table": "discrete", "address": 7, "type": "bool"}},
            {"name": "ir_f", "register": {"table": "input", "address": 10, "type": "float32",
                                          "word_order": "CDAB"}},
            {"name": "ir_u", "register": {"table": "input", "address": 12}},
        ]
        expected |= {"s_abcd": "PRESS-01", "s_badc": "PRESS-01", "scaled": -2.3,
                     "bit1": True, "bit2": False, "coil3": True, "coil4": False,
                     "coil5": True, "di5": True, "di7": False, "ir_f": 3.5, "ir_u": 7}
        sink, driver = await one_poll(device(srv.port, tags, transport, max_gap_registers=1))

    got = {name: s.value for name, s in sink.samples.items()}
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, float):
            assert got[name] == pytest.approx(value, rel=1e-6), name
        else:
            assert got[name] == value and type(got[name]) is type(value), name
    # 32 numeric tags span 0..110 with 1-register gaps -> 1 holding read; the strings and
    # scaled/bits at 200, 210, 220 are > 1 register apart -> 3 more; coils 3..5 in one read;
    # discrete inputs 5 and 7 in two (max_gap_bits is 0); the input registers in one.
    assert sorted(srv.requests) == sorted(
        ["ReadHoldingRegistersRequest"] * 4 + ["ReadCoilsRequest"]
        + ["ReadDiscreteInputsRequest"] * 2 + ["ReadInputRegistersRequest"])
    assert driver.requests == 8 and driver.errors == 0


@pytest.mark.parametrize(("gap", "requests"), [(0, 10), (3, 10), (4, 1)])
def test_merged_reads_across_gaps(gap, requests):
    asyncio.run(_gaps(gap, requests))


async def _gaps(gap: int, requests: int) -> None:
    async with Server() as srv:
        await srv.set(16, 0, list(range(1, 47)))
        tags = [{"name": f"t{a}", "register": {"address": a}} for a in range(0, 50, 5)]
        sink, _ = await one_poll(device(srv.port, tags, max_gap_registers=gap))
    assert len(srv.requests) == requests
    assert {n: s.value for n, s in sink.samples.items()} == {f"t{a}": a + 1
                                                            for a in range(0, 50, 5)}


def test_merged_reads_respect_125_registers_and_2000_bits():
    asyncio.run(_limits())


async def _limits() -> None:
    async with Server() as srv:
        await srv.set(15, 1999, [True])
        await srv.set(15, 2100, [True])
        # 60 uint32 at 0, 3, ..., 177 (one unused register between): 179 registers.
        tags = [{"name": f"u{a}", "register": {"address": a, "type": "uint32"}}
                for a in range(0, 180, 3)]
        tags += [{"name": f"c{a}", "register": {"table": "coil", "address": a, "type": "bool"}}
                 for a in (0, 100, 1999, 2100)]
        sink, _ = await one_poll(device(srv.port, tags, max_gap_registers=1,
                                        max_gap_bits=1998))
    assert sorted(srv.requests) == ["ReadCoilsRequest"] * 2 + ["ReadHoldingRegistersRequest"] * 2
    assert len(sink.samples) == 64
    assert [sink.samples[f"c{a}"].value for a in (0, 100, 1999, 2100)] == [
        False, False, True, True]


@pytest.mark.parametrize(("extra", "message"), [
    ({"transport": "rtu", "host": None}, "needs 'serial"),
    ({"transport": "rtu", "host": None, "serial": {"port": "ttyUSB0"}}, "serial.port"),
    ({"transport": "rtu", "host": None, "serial": {"port": "/dev/ttyUSB0",
                                                   "baudrate": 12345}}, "baudrate"),
    ({"transport": "rtu", "host": None, "serial": {"port": "/dev/ttyUSB0",
                                                   "parity": "X"}}, "parity"),
    ({"transport": "rtu", "serial": {"port": "/dev/ttyUSB0"}}, "remove 'host'"),
    ({"transport": "rtu_over_tcp", "host": None}, "needs 'host'"),
    ({"tags": [{"name": "s", "register": {"address": 0, "type": "string"}}]}, "length"),
    ({"tags": [{"name": "b", "register": {"address": 0, "type": "bool",
                                          "scale": 2}}]}, "scale"),
    ({"tags": [{"name": "b", "register": {"table": "coil", "address": 0, "type": "int16"}}]},
     "holds bits"),
    ({"tags": [{"name": "b", "register": {"address": 0, "type": "int16", "bit": 3}}]},
     "needs type 'bool'"),
])
def test_modbus_config_is_validated(extra, message):
    raw = {"id": "m", "protocol": "modbus", "host": "10.0.0.1",
           "path": {"enterprise": "e", "site": "s", "area": "a", "line": "l"},
           "tags": [{"name": "t", "register": {"address": 0}}]} | extra
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        ModbusDevice.model_validate(raw)


def test_rtu_serial_config_is_accepted():
    dev = ModbusDevice.model_validate({
        "id": "m", "protocol": "modbus", "transport": "rtu", "unit": 7,
        "serial": {"port": "/dev/ttyUSB0", "baudrate": 9600, "parity": "N", "stopbits": 2},
        "path": {"enterprise": "e", "site": "s", "area": "a", "line": "l"},
        "tags": [{"name": "t", "register": {"address": 0, "type": "float64",
                                            "word_order": "HGFEDCBA"}}]})
    assert dev.where == "modbus-rtu:///dev/ttyUSB0/7"
    assert dev.serial is not None and (dev.serial.baudrate, dev.serial.parity) == (9600, "N")
    assert dev.tags[0].reg.word_order == "DCBA"


def test_exception_response_marks_tags_bad_and_recovers():
    asyncio.run(_exception())


async def _exception() -> None:
    samples: list[Sample] = []

    class Collect(Sink):
        def sample(self, device: str, sample: Sample) -> None:
            samples.append(sample)

    async with Server() as srv:
        await srv.set(16, 0, [42])
        dev = device(srv.port, [{"name": "t", "register": {"address": 0}}]).model_copy(
            update={"poll_s": 0.05})
        driver = ModbusDriver(dev, Collect(), heartbeat_s=60)
        task = asyncio.create_task(driver.run())
        try:
            async with asyncio.timeout(10):
                while not samples:
                    await asyncio.sleep(0.01)
                srv.fail = True
                while samples[-1].quality != "bad":
                    await asyncio.sleep(0.01)
                srv.fail = False
                while samples[-1].quality != "good":
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert [(s.value, s.quality) for s in samples] == [(42, "good"), (42, "bad"), (42, "good")]
    assert driver.errors >= 1
