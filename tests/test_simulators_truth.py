"""truth.py: hand-computed OEE on a tiny log; window sums are additive (hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.contract import State
from shopfloor.simulators.machine import Kind, MachineModel
from shopfloor.simulators.scenario import load_scenario
from shopfloor.simulators.truth import load_truth

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
A = "acme/plant1/machining/line1/cnc-01"
B = "acme/plant1/assembly/line2/press-01"
DEMO = Path(__file__).parents[1] / "shopfloor" / "demo" / "scenario.yaml"


def s(sec: float) -> int:
    return T0 + round(sec * NS)


def tiny_log(path: Path) -> Path:
    recs: list[dict] = [{
        "type": "scenario", "seed": 1, "enterprise": "acme", "site": "plant1",
        "machines": [
            {"asset_id": A, "protocol": "opcua", "host": "127.0.0.1", "port": 1,
             "ideal_cycle_time_s": 1.0},
            {"asset_id": B, "protocol": "modbus", "host": "127.0.0.1", "port": 2,
             "ideal_cycle_time_s": 2.0}],
        "shift_start": s(10), "shift_end": s(80), "t0": s(0)}]
    for machine, intervals in ((A, [("NO_SHIFT", 0, 10), ("PRODUCING", 10, 40), ("DOWN", 40, 50),
                                    ("PLANNED_STOP", 50, 60), ("PRODUCING", 60, 80),
                                    ("NO_SHIFT", 80, 90)]),
                               (B, [("NO_SHIFT", 0, 10), ("PRODUCING", 10, 30), ("IDLE", 30, 35),
                                    ("SETUP", 35, 45), ("PRODUCING", 45, 80),
                                    ("NO_SHIFT", 80, 90)])):
        for state, start, end in intervals:
            recs.append({"type": "state", "machine": machine, "state": state,
                         "start": s(start), "end": s(end)})
    for machine, parts, rejects in ((A, [15, 20, 25, 30, 35, 65, 70, 75], {20, 70}),
                                    (B, [20, 25, 50, 60], {60})):
        for t in parts:
            recs.append({"type": "part", "machine": machine, "ts": s(t), "reject": t in rejects})
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def test_single_machine_whole_run(tmp_path):
    truth = load_truth(tiny_log(tmp_path / "t.jsonl"))
    r = truth.oee(A, s(0), s(90))
    # PRODUCING 50, DOWN 10, PLANNED_STOP 10, NO_SHIFT 20 -> PBT 60; 8 parts, 2 rejects.
    assert r["times_s"]["PRODUCING"] == 50 and r["times_s"]["DOWN"] == 10
    assert r["times_s"]["PLANNED_STOP"] == 10 and r["times_s"]["NO_SHIFT"] == 20
    assert r["times_s"]["OFFLINE"] == 0
    assert r["planned_busy_time_s"] == 60
    assert r["counts"] == {"total": 8, "good": 6, "reject": 2}
    assert r["ideal_production_time_s"] == 8
    assert r["availability"] == pytest.approx(50 / 60)
    assert r["performance"] == pytest.approx(8 / 50)
    assert r["quality"] == pytest.approx(6 / 8)
    assert r["oee"] == pytest.approx(0.1)


def test_two_machines_sum_then_divide(tmp_path):
    truth = load_truth(tiny_log(tmp_path / "t.jsonl"))
    r = truth.oee([A, B], *truth.shift_window())
    # Shift [10, 80): A: PRODUCING 50, DOWN 10, PLANNED_STOP 10 -> PBT 60;
    # B: PRODUCING 55, IDLE 5, SETUP 10 -> PBT 70. Ideal 8 + 2 x 4 = 16 s, 12 parts, 3 rejects.
    assert r["planned_busy_time_s"] == 130
    assert r["times_s"]["PRODUCING"] == 105 and r["times_s"]["NO_SHIFT"] == 0
    assert r["counts"] == {"total": 12, "good": 9, "reject": 3}
    assert r["ideal_production_time_s"] == 16
    assert r["availability"] == pytest.approx(105 / 130)
    assert r["performance"] == pytest.approx(16 / 105)
    assert r["quality"] == pytest.approx(9 / 12)
    assert r["oee"] == pytest.approx(144 / 1560)
    # Not the mean of the machines' OEEs.
    mean = (truth.oee(A, s(10), s(80))["oee"] + truth.oee(B, s(10), s(80))["oee"]) / 2
    assert r["oee"] != pytest.approx(mean)


def test_partial_window_and_boundaries(tmp_path):
    truth = load_truth(tiny_log(tmp_path / "t.jsonl"))
    r = truth.oee(A, s(20), s(50))
    assert r["planned_busy_time_s"] == 30
    assert r["counts"] == {"total": 4, "good": 3, "reject": 1}  # 20 in, 50 would be out
    assert r["availability"] == pytest.approx(20 / 30)
    assert r["performance"] == pytest.approx(0.2)
    assert r["quality"] == pytest.approx(0.75)
    assert truth.oee(A, s(15), s(20))["counts"]["total"] == 1  # start inclusive, end exclusive


def test_zero_denominators_are_none(tmp_path):
    truth = load_truth(tiny_log(tmp_path / "t.jsonl"))
    r = truth.oee([A, B], s(0), s(10))
    assert r["planned_busy_time_s"] == 0
    assert (r["availability"], r["performance"], r["quality"], r["oee"]) == (None,) * 4
    # Beyond the end of the log: not covered, so OFFLINE, not planned busy time.
    r = truth.oee(A, s(80), s(100))
    assert r["times_s"]["NO_SHIFT"] == 10 and r["times_s"]["OFFLINE"] == 10
    assert r["planned_busy_time_s"] == 0


def test_lookups_and_unknown_machine(tmp_path):
    truth = load_truth(tiny_log(tmp_path / "t.jsonl"))
    a = truth.machine(A)
    assert a.state_at(s(45)) == "DOWN" and a.state_at(s(40)) == "DOWN"
    assert a.state_at(s(95)) is None
    assert a.counters_at(s(20)) == (2, 1)
    assert truth.run_window() == (s(0), s(90))
    with pytest.raises(KeyError, match="nope"):
        truth.oee("nope", s(0), s(1))


def test_ideal_time_is_the_sum_of_each_parts_cycle_time(tmp_path):
    # A makes X (ICT 0.5 s), then Y (3 s): its parts at 15..35 are X, at 65..75 Y;
    # the part records carry the ICT, so ideal time is 5 x 0.5 + 3 x 3, not 8 x 1.0.
    path = tiny_log(tmp_path / "t.jsonl")
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    # B makes W (1 s) until its SETUP at 35..45, then Z (4 s); its reject at 60 is Z's.
    recs[0]["machines"][0]["products"] = [{"id": "X", "ideal_cycle_time_s": 0.5},
                                          {"id": "Y", "ideal_cycle_time_s": 3.0}]
    recs[0]["machines"][1]["products"] = [{"id": "W", "ideal_cycle_time_s": 1.0},
                                          {"id": "Z", "ideal_cycle_time_s": 4.0}]
    for r in recs:
        if r["type"] == "part":
            first = r["ts"] < s(40)
            ict = {(A, True): 0.5, (A, False): 3.0, (B, True): 1.0, (B, False): 4.0}[
                r["machine"], first]
            r.update(product=str(ict), ideal_cycle_time_s=ict)
    recs.reverse()  # parts out of order: each keeps its own ICT when sorted
    recs.insert(0, recs.pop())
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    truth = load_truth(path)
    r = truth.oee(A, s(0), s(90))
    assert r["ideal_production_time_s"] == pytest.approx(5 * 0.5 + 3 * 3.0)
    assert r["performance"] == pytest.approx(11.5 / 50)
    assert truth.oee(A, s(60), s(90))["ideal_production_time_s"] == pytest.approx(9.0)
    # the sum over both machines adds the ideal times (B: 2 x 1 + 2 x 4)
    assert truth.oee([A, B], s(0), s(90))["ideal_production_time_s"] == pytest.approx(21.5)
    # rejects at 20 (X) and 70 (Y): quality losses at their own ICTs
    losses = truth.losses(A, s(0), s(90), small_stop_s=0, startup_s=0)
    assert losses["losses_s"]["process_rejects"] == pytest.approx(0.5 + 3.0)
    assert losses["fully_productive_time_s"] == pytest.approx(11.5 - 3.5)
    assert losses["losses_s"]["slow_cycles"] == pytest.approx(50 - 11.5)
    losses = truth.losses(B, s(0), s(90), small_stop_s=0, startup_s=20)  # 45..65 start-up
    assert losses["losses_s"]["startup_rejects"] == pytest.approx(4.0)
    assert losses["losses_s"]["process_rejects"] == 0


def test_truncated_last_line_is_ignored(tmp_path):
    path = tiny_log(tmp_path / "t.jsonl")
    with path.open("a") as f:
        f.write('{"type":"part","machine":')
    assert load_truth(path).oee(A, s(0), s(90))["counts"]["total"] == 8


def offline_truth(path: Path, seed: int, until_s: float) -> Path:
    """A truth log for the demo plant computed from the dynamics alone (no servers)."""
    sc = load_scenario(DEMO).model_copy(update={"seed": seed})
    tl = sc.timeline.model_copy(update={"duration_s": 40.0})
    specs = sc.machines()
    recs: list[dict] = [{
        "type": "scenario", "seed": seed, "enterprise": "acme", "site": "plant1",
        "machines": [{"asset_id": m.asset_id, "ideal_cycle_time_s": m.ideal_cycle_time_s}
                     for m in specs],
        "shift_start": s(tl.lead_in_s), "shift_end": s(tl.lead_in_s + 40), "t0": s(0)}]
    for m in specs:
        prev = None
        for ev in MachineModel(m, tl, seed).simulate(until_s):
            if ev.kind is Kind.STATE:
                if prev is not None:
                    recs.append({"type": "state", "machine": m.asset_id, "state": prev.state,
                                 "start": s(prev.t), "end": s(ev.t)})
                prev = ev
            elif ev.kind is Kind.PART:
                recs.append({"type": "part", "machine": m.asset_id, "ts": s(ev.t),
                             "reject": ev.reject})
        recs.append({"type": "state", "machine": m.asset_id, "state": prev.state,
                     "start": s(prev.t), "end": s(until_s)})
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo_truth(tmp_path_factory):
    return load_truth(offline_truth(tmp_path_factory.mktemp("truth") / "t.jsonl", 7, 46.0))


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 46 * NS), min_size=3, max_size=3), n=st.integers(1, 5))
def test_window_sums_are_additive(demo_truth, cuts, n):
    a, m, b = (T0 + c for c in sorted(cuts))
    ids = list(demo_truth.machines)[:n]
    left, right, whole = (demo_truth.oee(ids, x, y) for x, y in ((a, m), (m, b), (a, b)))
    for key in ("total", "good", "reject"):
        assert left["counts"][key] + right["counts"][key] == whole["counts"][key]
    for state, sec in whole["times_s"].items():
        assert left["times_s"][state] + right["times_s"][state] == pytest.approx(sec, abs=1e-6)
    assert sum(whole["times_s"].values()) == pytest.approx((b - a) / NS * n, abs=1e-6)
    assert whole["times_s"]["OFFLINE"] == 0
    assert (left["planned_busy_time_s"] + right["planned_busy_time_s"]
            == pytest.approx(whole["planned_busy_time_s"], abs=1e-6))
    if whole["oee"] is not None:
        assert whole["oee"] == pytest.approx(
            whole["availability"] * whole["performance"] * whole["quality"])
        assert 0 <= whole["availability"] <= 1 and 0 <= whole["quality"] <= 1


def test_outage_is_offline_and_its_parts_count(tmp_path):
    path = tiny_log(tmp_path / "t.jsonl")
    with path.open("a") as f:  # A's device unreachable 35..45 s (PRODUCING 35-40, DOWN 40-45)
        f.write(json.dumps({"type": "outage", "machine": A, "start": s(35), "end": s(45)}) + "\n")
    truth = load_truth(path)
    r = truth.oee(A, s(0), s(90))
    assert r["times_s"]["OFFLINE"] == 10
    assert r["times_s"]["PRODUCING"] == 45 and r["times_s"]["DOWN"] == 5
    assert r["planned_busy_time_s"] == 50  # 90 - 10 planned stop - 20 no shift - 10 offline
    assert r["counts"]["total"] == 8  # the part at 35 s still counts
    m = truth.machine(A)
    assert m.state_at(s(35)) is State.OFFLINE and m.state_at(s(45)) is State.DOWN
    assert [(e.state, e.start, e.end) for e in m.episodes()][1:4] == [
        (State.PRODUCING, s(10), s(35)), (State.OFFLINE, s(35), s(45)), (State.DOWN, s(45), s(50))]
    assert truth.oee(B, s(0), s(90))["times_s"]["OFFLINE"] == 0
