"""Losses and OEE from the API equal the simulators' ground truth, per machine and
rolled up to line, plant and cluster. The simulated machines' event streams are
written straight into an embedded store (no network), with a counter reset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from shopfloor.contract import Sample
from shopfloor.demo.configs import registry_from_scenario
from shopfloor.server.app import create_app
from shopfloor.server.config import ServerConfig
from shopfloor.simulators.machine import Kind, MachineModel
from shopfloor.simulators.scenario import Scenario
from shopfloor.simulators.truth import Interval, MachineTruth, Truth
from shopfloor.storage.sqlite import SqliteStore

NS = 1_000_000_000
T0 = 1_763_800_000 * NS
SCENARIO = {
    "seed": 5, "enterprise": {"id": "acme"}, "site": {"id": "plant1"},
    "timeline": {"lead_in_s": 5, "duration_s": 600, "lead_out_s": 5},
    "defaults": {"ideal_cycle_time_s": 0.5, "speed_factor": 1.15, "reject_rate": 0.08,
                 "durations_s": {"PRODUCING": [4, 12], "IDLE": [0.5, 6], "DOWN": [0.5, 9],
                                 "SETUP": [1, 5], "PLANNED_STOP": [1, 3]}},
    "areas": [
        {"id": "machining", "lines": [{"id": "line1", "machines": [
            {"id": "cnc-01", "protocol": "opcua", "port": 1},
            {"id": "press-01", "protocol": "modbus", "port": 2, "ideal_cycle_time_s": 0.4,
             "speed_factor": 1.3}]}]},
        {"id": "assembly", "lines": [{"id": "line2", "machines": [
            {"id": "cnc-02", "protocol": "opcua", "port": 3, "speed_factor": 0.95},
            {"id": "press-02", "protocol": "modbus", "port": 4, "reject_rate": 0.2}]}]},
    ],
}
SMALL_S, STARTUP_S = 3.0, 4.0
RESET_AT_S = 300.0  # press-01's counters are reset to zero here


def ns(t: float) -> int:
    return T0 + round(t * NS)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plant")
    scenario = Scenario.model_validate(SCENARIO)
    end_s = scenario.timeline.total_s
    store = SqliteStore(tmp / "store.db")
    machines = {}
    for spec in scenario.machines():
        model = MachineModel(spec, scenario.timeline, scenario.seed)
        truth = MachineTruth(spec.asset_id, spec.ideal_cycle_time_s, {})
        for seg in model.segments():
            if seg.start >= end_s:
                break
            truth.intervals.append(Interval(seg.state, ns(seg.start), ns(min(seg.end, end_s))))
        rows, offset = [], (0, 0)
        for ev in model.simulate(end_s):
            ts = ns(ev.t)
            if ev.kind is Kind.PART:
                truth.part_ts.append(ts)
                if ev.reject:
                    truth.reject_ts.append(ts)
            if spec.id == "press-01" and ev.t >= RESET_AT_S and offset == (0, 0):
                offset = (ev.part_count - (ev.kind is Kind.PART),
                          ev.reject_count - (ev.kind is Kind.PART and ev.reject))
            if ev.kind is Kind.STATE:
                rows.append((spec.path, Sample("state", ts, ev.state.value)))
            if ev.kind in (Kind.STATE, Kind.PART):
                rows.append((spec.path, Sample("part_count", ts, ev.part_count - offset[0])))
                rows.append((spec.path, Sample("reject_count", ts,
                                               ev.reject_count - offset[1])))
        store.write(rows)
        machines[spec.asset_id] = truth
    store.close()
    (tmp / "registry.yaml").write_text(yaml.safe_dump(registry_from_scenario(SCENARIO)))
    return tmp, machines


# Asia/Shanghai (UTC+8): T0 is Saturday 16:26:40 local. Shift T0+10 s .. T0+560 s with a
# break T0+200 .. T0+240; a second shift from T0+580 s; the rest is no-shift time.
CALENDAR = {"timezone": "Asia/Shanghai", "weekly": {"sat": [
    {"name": "late", "start": "16:26:50", "end": "16:36:00",
     "breaks": [{"start": "16:30:00", "end": "16:30:40"}]},
    {"name": "extra", "start": "16:36:20", "end": "16:50:00"}]}}
CAL_SHIFTS = [(ns(10), ns(560), [(ns(200), ns(240))]), (ns(580), ns(1400), [])]


@pytest.fixture(scope="module", params=["no calendar", "calendar"])
def plant(request, simulated):
    tmp, machines = simulated
    oee_cfg = {"stale_after_s": 60, "small_stop_s": SMALL_S, "startup_s": STARTUP_S}
    if request.param == "calendar":
        oee_cfg["calendar"] = CALENDAR
        machines = {k: m.with_calendar(CAL_SHIFTS) for k, m in machines.items()}
    cfg = ServerConfig.model_validate({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(tmp / "store.db")}},
        "oee": oee_cfg})
    truth = Truth({"t0": T0, "shift_start": ns(5), "shift_end": ns(605)}, machines)
    with TestClient(create_app(cfg, tmp)) as client:
        yield client, truth, request.param == "calendar"


def iso(t: int) -> str:
    from datetime import UTC, datetime
    return datetime.fromtimestamp(t / NS, UTC).isoformat()


IDS = [f"acme/plant1/{a}/{ln}/{m}" for a, ln, m in (
    ("machining", "line1", "cnc-01"), ("machining", "line1", "press-01"),
    ("assembly", "line2", "cnc-02"), ("assembly", "line2", "press-02"))]
SCOPES = {**{i: [i] for i in IDS}, "acme/plant1/machining/line1": IDS[:2],
          "acme/plant1/assembly/line2": IDS[2:], "acme/plant1": IDS, "demo-cluster": IDS}
WINDOWS = [(0, 610), (5, 605), (100.3, 377.7)]


def close(got, want, rel=1e-9, abs_=1e-6) -> bool:
    if want is None or got is None:
        return got == want
    return math.isclose(got, want, rel_tol=rel, abs_tol=abs_)


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("scope", list(SCOPES))
def test_losses_equal_ground_truth(plant, scope, window):
    client, truth, _ = plant
    t0, t1 = ns(window[0]), ns(window[1])
    r = client.get("/api/v1/losses", params={"scope": scope, "start": iso(t0), "end": iso(t1)})
    assert r.status_code == 200, r.text
    got, want = r.json(), truth.losses(SCOPES[scope], t0, t1, SMALL_S, STARTUP_S)
    for key in ("availability", "performance", "quality", "oee", "mtbf_s", "mttr_s",
                "technical_efficiency", "setup_ratio", "scrap_ratio",
                "fully_productive_time_s", "planned_busy_time_s"):
        assert close(got[key], want[key]), (key, got[key], want[key])
    for name, secs in want["losses_s"].items():
        assert close(got["losses_s"][name], secs), (name, got["losses_s"], want["losses_s"])
    for key in ("failure_count", "setup_count", "startup_reject_count"):
        assert got[key] == want[key], key
    assert got["small_stops"]["count"] == want["small_stops"]["count"]
    assert close(got["small_stops"]["short_stops_s"], want["small_stops"]["short_stops_s"])
    assert got["counts"] == want["counts"]
    # the six losses add up to PBT - fully productive time
    assert got["loss_total_s"] == pytest.approx(
        got["planned_busy_time_s"] - got["fully_productive_time_s"], abs=1e-6)


def test_the_scenario_exercises_every_loss(plant):
    _, truth, with_calendar = plant
    want = truth.losses(IDS, ns(0), ns(610), SMALL_S, STARTUP_S)
    if with_calendar:
        # the calendar's break (40 s) and no-shift time (30 s) on each of 4 machines,
        # whatever the machines did; parts made outside planned time push P above 100 %
        assert want["times_s"]["PLANNED_STOP"] >= 4 * 40
        assert want["times_s"]["NO_SHIFT"] >= 4 * 30
        assert want["performance"] > 1
        return
    assert want["small_stops"]["count"] > 5 and want["failure_count"] > 5
    assert want["startup_reject_count"] > 0
    assert all(v > 0 for v in want["losses_s"].values()), want["losses_s"]


@pytest.mark.parametrize("granularity", ["1h", "day", "shift"])
def test_trend_buckets_equal_ground_truth(plant, granularity):
    client, truth, with_calendar = plant
    r = client.get("/api/v1/trend", params={"scope": "acme/plant1", "start": iso(ns(0)),
                                            "end": iso(ns(610)), "granularity": granularity})
    if granularity == "shift" and not with_calendar:
        assert r.status_code == 422 and "calendar" in r.text
        return
    assert r.status_code == 200, r.text
    rows = r.json()["buckets"]
    want_windows = {"1h": [(0, 610)], "day": [(0, 610)],
                    "shift": [(10, 560), (580, 610)]}[granularity]
    assert len(rows) == len(want_windows)
    for row, (a, b) in zip(rows, want_windows, strict=True):
        want = truth.oee(IDS, ns(a), ns(b))
        for key in ("availability", "performance", "quality", "oee"):
            assert close(row[key], want[key]), (key, row[key], want[key])
        assert row["counts"] == want["counts"]
    if granularity == "shift":
        assert [row["label"] for row in rows] == ["late", "extra"]


def test_data_gap_is_offline_never_running(simulated, tmp_path):
    # cnc-01's edge goes silent from 300 s to 400 s: after the staleness limit (20 s)
    # the time is OFFLINE, reported and flagged, and out of planned busy time; the
    # counters bridge the gap, so the counts stay exact.
    import shutil
    import sqlite3
    src, machines = simulated
    shutil.copytree(src, tmp_path / "gap")
    with sqlite3.connect(tmp_path / "gap" / "store.db") as db:
        db.execute("DELETE FROM samples WHERE ts >= ? AND ts < ? AND series_id IN "
                   "(SELECT id FROM series WHERE device = 'cnc-01')", (ns(300), ns(400)))
    cfg = ServerConfig.model_validate({
        "registry": "registry.yaml",
        "store": {"embedded": {"path": str(tmp_path / "gap" / "store.db")}},
        "oee": {"stale_after_s": 20, "small_stop_s": SMALL_S, "startup_s": STARTUP_S}})
    truth = Truth({"t0": T0, "shift_start": ns(5), "shift_end": ns(605)}, machines)
    with TestClient(create_app(cfg, tmp_path / "gap")) as c:
        got = c.get("/api/v1/losses", params={"scope": IDS[0], "start": iso(ns(0)),
                                                "end": iso(ns(610))}).json()
    want = truth.losses(IDS[0], ns(0), ns(610), SMALL_S, STARTUP_S)
    m = machines[IDS[0]]
    c0 = min(iv.start for iv in m.intervals if iv.start >= ns(300))  # first lost change
    last = m.state_at(c0 - 1)
    lb = max(iv.start for iv in m.intervals if iv.start < c0)  # last change received
    c1 = min(iv.start for iv in m.intervals if iv.start >= ns(400))  # first after the gap
    held = min(max(lb + 20 * NS, c0), c1)  # the server holds `last` until it is stale
    # what the server can know: the truth outside [c0, c1), `last` until held, OFFLINE
    times = {k: truth.oee(IDS[0], ns(0), c0)["times_s"][k]
             + truth.oee(IDS[0], c1, ns(610))["times_s"][k] for k in want["times_s"]}
    times[last.value] += (held - c0) / NS
    times["OFFLINE"] += (c1 - held) / NS
    assert c1 - held > 50 * NS  # a real gap
    for state, secs in times.items():
        assert got["times_s"][state] == pytest.approx(secs, abs=1e-6), state
    assert "data_gaps" in got["flags"]
    assert got["planned_busy_time_s"] == pytest.approx(
        610 - times["OFFLINE"] - times["NO_SHIFT"] - times["PLANNED_STOP"], abs=1e-6)
    assert got["counts"] == want["counts"]


def test_simulated_counter_reset_is_counted_from_zero():
    from shopfloor.server import kernels
    spec = SCENARIO | {"defaults": SCENARIO["defaults"] | {"counter_reset_at_s": 200.0}}
    scenario = Scenario.model_validate(spec)
    m = scenario.machines()[0]
    events = MachineModel(m, scenario.timeline, scenario.seed).simulate(610)
    plain = MachineModel(scenario.machines()[0].__class__(
        **{f: getattr(m, f) for f in m.__slots__} | {"counter_reset_at_s": None}),
        scenario.timeline, scenario.seed).simulate(610)
    parts = [e for e in events if e.kind is Kind.PART]
    assert len(parts) == len([e for e in plain if e.kind is Kind.PART])  # same parts
    served = np.array([float(e.part_count) for e in events])
    assert (np.diff(served) < 0).sum() == 1  # one drop: the reset
    assert kernels.counter_increase(served, 32) == len(parts)
    rejects = np.array([float(e.reject_count) for e in events])
    assert kernels.counter_increase(rejects, 32) == sum(e.reject for e in parts)
