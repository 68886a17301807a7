"""The runner on loopback: real asyncua and pymodbus clients read what the truth log says."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from asyncua import Client, ua
from pymodbus.client import AsyncModbusTcpClient
from services import free_port

from shopfloor.config import ConfigError
from shopfloor.contract import State
from shopfloor.edge.modbus.codec import decode
from shopfloor.simulators.codes import DEVICE_STATE_BY_CODE, DEVICE_STATE_CODES
from shopfloor.simulators.machine import Kind, MachineModel
from shopfloor.simulators.runner import Simulation
from shopfloor.simulators.scenario import Scenario
from shopfloor.simulators.truth import Truth, load_truth

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CNC = "acme/plant1/machining/line1/cnc-01"
PRESS = "acme/plant1/machining/line1/press-01"


def scenario_doc(opcua_port: int, modbus_port: int, duration_s: float = 6) -> dict:
    short = [0.4, 0.8]
    return {
        "seed": 42,
        "enterprise": {"id": "acme"}, "site": {"id": "plant1"},
        "timeline": {"lead_in_s": 1, "duration_s": duration_s, "lead_out_s": 1},
        "defaults": {"ideal_cycle_time_s": 0.3, "speed_factor": 1.1, "reject_rate": 0.2,
                     "durations_s": {"PRODUCING": [0.8, 1.5], "IDLE": short, "DOWN": short,
                                     "SETUP": short, "PLANNED_STOP": short}},
        "areas": [{"id": "machining", "lines": [{"id": "line1", "machines": [
            {"id": "cnc-01", "protocol": "opcua", "port": opcua_port},
            {"id": "press-01", "protocol": "modbus", "port": modbus_port,
             "ideal_cycle_time_s": 0.25},
        ]}]}],
    }


def dt_ns(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1) * 1000


def u32(hi: int, lo: int) -> int:
    return hi << 16 | lo


async def read_opcua(client: Client) -> dict[str, ua.DataValue]:
    return {name: await client.get_node(f"ns=2;s=cnc-01.{name}").read_data_value()
            for name in ("State", "PartCount", "RejectCount", "SpindleLoad")}


async def read_modbus(client: AsyncModbusTcpClient) -> list[int]:
    rr = await client.read_holding_registers(0, count=7, device_id=1)
    assert not rr.isError(), rr
    return rr.registers


def check_truth_shape(truth: Truth, total_s: float) -> None:
    shift_start, shift_end = truth.shift_window()
    assert shift_start - truth.t0 == 1_000_000_000
    assert shift_end - shift_start == 6_000_000_000
    for m in truth.machines.values():
        ivs = m.intervals
        assert ivs[0].start == truth.t0 and ivs[0].state is State.NO_SHIFT
        assert all(a.end == b.start for a, b in zip(ivs, ivs[1:], strict=False))
        assert ivs[-1].state is State.NO_SHIFT and ivs[-1].start == shift_end
        assert ivs[-1].end - truth.t0 == round(total_s * 1e9)
        assert {iv.state for iv in ivs} >= {State.PRODUCING, State.NO_SHIFT}
        for ts in m.part_ts:
            assert m.state_at(ts) is State.PRODUCING


async def serve_and_read(tmp_path: Path) -> None:
    op, mp = free_port(), free_port()
    truth_path = tmp_path / "truth.jsonl"
    sim = Simulation(Scenario.model_validate(scenario_doc(op, mp)), truth_path)
    await sim.start()
    polls: list[tuple[int, int, dict[str, ua.DataValue], list[int]]] = []
    opc = Client(f"opc.tcp://127.0.0.1:{op}", timeout=5)
    mb = AsyncModbusTcpClient("127.0.0.1", port=mp, timeout=5)
    try:
        await opc.connect()
        assert await mb.connect()
        assert await opc.get_namespace_index("urn:shopfloor:sim") == 2
        obj = await opc.nodes.objects.get_child("2:cnc-01")
        names = {(await n.read_browse_name()).Name for n in await obj.get_children()}
        assert names == {"State", "PartCount", "RejectCount", "SpindleLoad"}
        assert (await opc.get_node("ns=2;s=cnc-01.State").read_data_type_as_variant_type()
                == ua.VariantType.Int32)
        assert (await opc.get_node("ns=2;s=cnc-01.PartCount").read_data_type_as_variant_type()
                == ua.VariantType.UInt32)

        run = asyncio.create_task(sim.run())
        while not run.done():
            before = time.time_ns()
            dvs, regs = await read_opcua(opc), await read_modbus(mb)
            polls.append((before, time.time_ns(), dvs, regs))
            await asyncio.sleep(0.15)
        await run
        finished_ns = time.time_ns()
        final_opc, final_regs = await read_opcua(opc), await read_modbus(mb)
    finally:
        await opc.disconnect()
        mb.close()
        await sim.close()

    truth = load_truth(truth_path)
    assert 8.0 <= (finished_ns - truth.t0) / 1e9 < 10  # lead-in + shift + lead-out
    check_truth_shape(truth, 8.0)
    cnc, press = truth.machine(CNC), truth.machine(PRESS)
    assert len(polls) > 20

    for before, after, dvs, regs in polls:
        # OPC UA: the state served has the truth interval's start as SourceTimestamp.
        state = DEVICE_STATE_BY_CODE[dvs["State"].Value.Value]
        src = dt_ns(dvs["State"].SourceTimestamp)
        assert dvs["State"].ServerTimestamp == dvs["State"].SourceTimestamp
        if src >= truth.t0:
            assert cnc.state_at(src) is state
            assert any(iv.start == src for iv in cnc.intervals)
        else:  # served before the clock started: the initial NO_SHIFT
            assert state is State.NO_SHIFT
        assert state in {cnc.state_at(before), cnc.state_at(after)} or before < truth.t0
        parts = dvs["PartCount"].Value.Value
        assert cnc.counters_at(before)[0] <= parts <= cnc.counters_at(after)[0]
        rejects = dvs["RejectCount"].Value.Value
        assert cnc.counters_at(before)[1] <= rejects <= cnc.counters_at(after)[1]
        if parts:
            assert dt_ns(dvs["PartCount"].SourceTimestamp) in cnc.part_ts
        assert 0 <= dvs["SpindleLoad"].Value.Value <= 100
        # Modbus: registers as in DESIGN.md.
        state = DEVICE_STATE_BY_CODE[regs[0]]
        assert state in {press.state_at(before), press.state_at(after)} or before < truth.t0
        lo, hi = press.counters_at(before), press.counters_at(after)
        assert lo[0] <= u32(regs[1], regs[2]) <= hi[0]
        assert lo[1] <= u32(regs[3], regs[4]) <= hi[1]
        load = AsyncModbusTcpClient.convert_from_registers(
            regs[5:7], AsyncModbusTcpClient.DATATYPE.FLOAT32, word_order="big")
        assert 0 <= load <= 100

    # After the run the final snapshot stays served: NO_SHIFT since the shift end.
    shift_end = truth.shift_window()[1]
    assert final_opc["State"].Value.Value == DEVICE_STATE_CODES[State.NO_SHIFT]
    assert dt_ns(final_opc["State"].SourceTimestamp) == shift_end
    assert final_opc["PartCount"].Value.Value == len(cnc.part_ts) > 0
    assert final_opc["RejectCount"].Value.Value == len(cnc.reject_ts)
    assert dt_ns(final_opc["PartCount"].SourceTimestamp) == cnc.part_ts[-1]
    assert final_regs[0] == DEVICE_STATE_CODES[State.NO_SHIFT]
    assert u32(final_regs[1], final_regs[2]) == len(press.part_ts) > 0
    assert u32(final_regs[3], final_regs[4]) == len(press.reject_ts)
    # Both machines went through several states during the polls.
    assert len({DEVICE_STATE_BY_CODE[p[3][0]] for p in polls}) >= 3
    assert len({p[2]["State"].Value.Value for p in polls}) >= 3


def test_servers_serve_the_truth(tmp_path):
    asyncio.run(asyncio.wait_for(serve_and_read(tmp_path), 60))


def cli(tmp_path: Path, doc: dict, *extra: str) -> tuple[subprocess.Popen, Path]:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(doc), encoding="utf-8")
    truth = tmp_path / "truth.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopfloor", "simulate", "--scenario", str(scenario),
         "--truth", str(truth), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, truth


def test_cli_duration_cuts_the_run(tmp_path):
    proc, truth_path = cli(tmp_path, scenario_doc(free_port(), free_port(), 30),
                           "--duration", "2.5")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "cnc-01 opcua opc.tcp://127.0.0.1:" in out and " ready" in out
    truth = load_truth(truth_path)
    for m in truth.machines.values():
        assert m.intervals[-1].end - truth.t0 == 2_500_000_000
        assert m.intervals[-1].state is not State.NO_SHIFT  # cut inside the shift


def test_cli_sigterm_stops_cleanly_and_flushes(tmp_path):
    proc, truth_path = cli(tmp_path, scenario_doc(free_port(), free_port(), 60))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait for the first closed interval
            if truth_path.exists() and '"type":"state"' in truth_path.read_text():
                break
            time.sleep(0.1)
        else:
            raise AssertionError("no state record within 30 s")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    lines = truth_path.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # complete lines only
    truth = load_truth(truth_path)
    for m in truth.machines.values():
        last = m.intervals[-1]
        assert last.end > last.start
        assert 1.5e9 < last.end - truth.t0 < 10e9


def test_port_in_use_is_a_config_error_naming_the_machine():
    async def main(port: int) -> None:
        sim = Simulation(Scenario.model_validate(scenario_doc(free_port(), port)),
                         source="plant.yaml")
        with pytest.raises(ConfigError, match=r"plant.yaml: machine press-01: cannot listen"):
            await sim.start()

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        asyncio.run(asyncio.wait_for(main(busy.getsockname()[1]), 30))


def test_longer_duration_stays_no_shift(tmp_path):
    doc = scenario_doc(free_port(), free_port())
    doc["timeline"] = {"lead_in_s": 0.2, "duration_s": 0.6, "lead_out_s": 0.2}
    doc["areas"][0]["lines"][0]["machines"].pop(0)  # the Modbus machine only
    truth_path = tmp_path / "truth.jsonl"

    async def main() -> None:
        sim = Simulation(Scenario.model_validate(doc), truth_path, duration_s=1.5)
        try:
            await sim.start()
            await sim.run()
        finally:
            await sim.close()

    asyncio.run(asyncio.wait_for(main(), 30))
    truth = load_truth(truth_path)
    press = truth.machine(PRESS)
    last = press.intervals[-1]
    assert last.state is State.NO_SHIFT
    assert (last.start - truth.t0, last.end - truth.t0) == (800_000_000, 1_500_000_000)
    assert press.intervals[0].state is State.NO_SHIFT
    assert press.intervals[1].state is State.PRODUCING
    assert press.intervals[1].start - truth.t0 == 200_000_000


def test_products_are_served_and_logged(tmp_path):
    """Both servers serve the product being made; the truth log gives each part its ICT."""
    op, mp = free_port(), free_port()
    doc = scenario_doc(op, mp)
    # 6 s shift of <= 1.3 s PRODUCING + stop: four stops, so at least one SETUP
    doc["defaults"]["durations_s"] = {"PRODUCING": [0.5, 0.8], "IDLE": [0.3, 0.5],
                                      "DOWN": [0.3, 0.5], "SETUP": [0.3, 0.5],
                                      "PLANNED_STOP": [0.3, 0.5]}
    doc["defaults"]["products"] = [{"id": "SHAFT-1", "ideal_cycle_time_s": 0.1},
                                   {"id": "FLANGE", "ideal_cycle_time_s": 0.2}]
    scenario = Scenario.model_validate(doc)
    truth_path = tmp_path / "truth.jsonl"
    polls: list[tuple[int, int, str, str]] = []

    async def main() -> tuple[str, str]:
        sim = Simulation(scenario, truth_path)
        await sim.start()
        opc = Client(f"opc.tcp://127.0.0.1:{op}", timeout=5)
        mb = AsyncModbusTcpClient("127.0.0.1", port=mp, timeout=5)
        node = opc.get_node("ns=2;s=cnc-01.Product")

        async def read() -> tuple[str, str]:
            rr = await mb.read_holding_registers(7, count=4, device_id=1)
            assert not rr.isError(), rr
            return await node.read_value(), decode(rr.registers, "string")
        try:
            await opc.connect()
            assert await mb.connect()
            assert await node.read_data_type_as_variant_type() == ua.VariantType.String
            run = asyncio.create_task(sim.run())
            while not run.done():
                before = time.time_ns()
                served = await read()
                polls.append((before, time.time_ns(), *served))
                await asyncio.sleep(0.05)
            await run
            return await read()
        finally:
            await opc.disconnect()
            mb.close()
            await sim.close()

    final = asyncio.run(asyncio.wait_for(main(), 60))
    truth = load_truth(truth_path)
    records = [json.loads(line) for line in truth_path.read_text().splitlines()]
    ict = {"SHAFT-1": 0.1, "FLANGE": 0.2}
    for i, (spec, asset) in enumerate(zip(scenario.machines(), (CNC, PRESS), strict=True)):
        events = MachineModel(spec, scenario.timeline, scenario.seed).simulate(8.0)
        changes = [e for e in events if e.kind is Kind.STATE]
        assert len({e.product for e in changes}) == 2  # a changeover happened

        def product_at(ts: int, changes=changes) -> str:
            return [e.product for e in changes if truth.t0 + round(e.t * 1e9) <= ts][-1]

        for before, after, *served in polls:
            if before >= truth.t0:
                assert served[i] in {product_at(before), product_at(after)}
        assert final[i] == changes[-1].product
        parts = [e for e in events if e.kind is Kind.PART]
        logged = [r for r in records if r["type"] == "part" and r["machine"] == asset]
        assert len(logged) == len(parts) == len(truth.machine(asset).part_ict) > 0
        for ev, rec in zip(parts, logged, strict=True):
            assert (rec["product"], rec["ideal_cycle_time_s"]) == (ev.product, ict[ev.product])


async def outage_run(tmp_path: Path) -> tuple[list, list, Truth]:
    """cnc-01 (OPC UA) and press-01 (Modbus) are down 1.5-5.0 s (long enough for asyncua
    to build the next server): refused in it; right after it the first reads are the
    machine's current values, as the truth has them."""
    doc = scenario_doc(free_port(), free_port(), duration_s=5)
    doc["defaults"]["outage"] = {"at_s": 1.5, "duration_s": 3.5}
    sim = Simulation(Scenario.model_validate(doc), tmp_path / "truth.jsonl")
    await sim.start()
    run = asyncio.create_task(sim.run())
    opc_url, mb_port = sim.machines[0].server.url, sim.machines[1].spec.port
    loop = asyncio.get_running_loop()
    after_opc: list = []
    after_mb: list = []
    try:
        await asyncio.sleep(sim._t0_mono + 2.0 - loop.time())  # in the outage
        with pytest.raises((OSError, TimeoutError)):
            await asyncio.wait_for(Client(opc_url).connect(), 1)
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", mb_port)
        while loop.time() - sim._t0_mono < 6.5:  # connect as soon as each is back
            if not after_opc:
                client = Client(opc_url, timeout=1)
                try:
                    await client.connect()
                    before = time.time_ns()
                    after_opc = [before, await read_opcua(client), time.time_ns()]
                    await client.disconnect()
                except (OSError, TimeoutError):
                    pass
            if not after_mb:
                mb = AsyncModbusTcpClient("127.0.0.1", port=mb_port, retries=0,
                                          reconnect_delay=0, timeout=1)
                if await mb.connect():
                    before = time.time_ns()
                    after_mb = [before, await read_modbus(mb), time.time_ns()]
                mb.close()
            await asyncio.sleep(0.02)
        await run
    finally:
        await sim.close()
    return after_opc, after_mb, load_truth(tmp_path / "truth.jsonl")


def test_outage_stops_the_servers_and_they_come_back_with_current_values(tmp_path):
    after_opc, after_mb, truth = asyncio.run(outage_run(tmp_path))
    assert after_opc and after_mb
    for asset, (t_a, _, t_b), parts_of in (
            (CNC, after_opc, lambda: after_opc[1]["PartCount"].Value.Value),
            (PRESS, after_mb, lambda: u32(after_mb[1][1], after_mb[1][2]))):
        m = truth.machine(asset)
        (o0, o1), = m.outages
        assert o1 - o0 == pytest.approx(3.5e9, abs=0.3e9)
        assert o0 - truth.t0 == pytest.approx(1.5e9, abs=0.1e9)
        assert o1 <= t_b  # read after the server was back
        # the machine ran on: parts during the outage are served (not zeros)
        served = parts_of()
        assert m.counters_at(t_a)[0] <= served <= m.counters_at(t_b)[0]
        assert m.count(o0, o1)[0] > 0  # parts were made in the outage
        r = truth.oee(asset, truth.t0, truth.run_window()[1])
        assert r["times_s"]["OFFLINE"] == pytest.approx((o1 - o0) / 1e9)
        assert m.state_at(o0 + 1) is State.OFFLINE and m.state_at(o1) is not State.OFFLINE
    code = after_opc[1]["State"].Value.Value
    assert DEVICE_STATE_BY_CODE[code] is truth.machine(CNC).state_at(after_opc[0]) or \
        DEVICE_STATE_BY_CODE[code] is truth.machine(CNC).state_at(after_opc[2])
