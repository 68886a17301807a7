"""Roll-ups equal the raw computation: machine histories written to a real embedded store
in shuffled batches, some late, some twice, buckets built by the maintainer between the
writes; then any window, aligned or not, answered from buckets plus raw edges equals the
answer from raw samples alone (counts exactly, times and ratios within 1e-9) — also right
after a late write the maintainer has not applied yet (hypothesis over windows). Counts
people entered are added to either alike: the raw computation plus the entries in the
window, at the ideal cycle time in force at each."""

from __future__ import annotations

import bisect
import copy
import random
from dataclasses import dataclass

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.contract import DevicePath, Quality, Sample
from shopfloor.server.calendar import CalendarConfig
from shopfloor.server.registry import Registry, RegistryModel
from shopfloor.server.rollup.buckets import SqliteBuckets
from shopfloor.server.rollup.entered import KINDS, CountEntry
from shopfloor.server.rollup.maintainer import Maintainer
from shopfloor.server.rollup.quantities import Definition
from shopfloor.server.rollup.source import QuantitySource, Rollups
from shopfloor.storage.sqlite import SqliteStore

S = 10**9
T0 = 1_764_540_000 * S  # 2025-11-30T22:00Z: the histories cross midnight
SPAN_S = 4 * 3600
STATES = ["PRODUCING", "PRODUCING", "IDLE", "DOWN", "SETUP", "PLANNED_STOP"]
REGISTRY = {"cluster": {"id": "c"}, "enterprises": [{"id": "acme", "sites": [{
    "id": "p1", "workshops": [{"id": "w", "lines": [{"id": "l1", "equipment": [
        {"id": "m1", "ideal_cycle_time_s": 20.0},
        {"id": "m2", "ideal_cycle_times_s": {"A": 15.0, "B": 40.0}, "counter_bits": 16},
        {"id": "m3"}]}]}]}]}]}
CALENDAR = CalendarConfig.model_validate({
    "timezone": "Asia/Shanghai",
    "weekly": {d: [{"name": "day", "start": "06:00", "end": "10:00",
                    "breaks": [{"start": "07:30", "end": "07:45"}]}]
               for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}})


def history(device: DevicePath, rng: random.Random, products: bool) -> list[Sample]:
    """What an edge publishes: states on change plus 10 s heartbeats of every tag,
    counters once per cycle, a reset, bad samples, product changes."""
    out: list[Sample] = []
    t, state = 0.0, "PRODUCING"
    parts = rejects = 0
    product = "A"
    next_change, next_part = rng.uniform(5, 200), rng.uniform(10, 60)
    while t < SPAN_S:
        t += rng.choice([1.0, 10.0, 10.0, 10.0]) + rng.random()
        ts = T0 + int(t * S)
        if t >= next_change:
            state = rng.choice(STATES)
            next_change = t + rng.choice([3, 30, 90, 200, 700]) * rng.random() + 1
            if products and state == "SETUP":
                product = "B" if product == "A" else "A"
        if state == "PRODUCING" and t >= next_part:
            parts += 1
            if rng.random() < 0.1:
                rejects += 1
            next_part = t + rng.uniform(10, 60)
        if rng.random() < 0.003:
            parts = rejects = 0  # a counter reset
        bad = rng.random() < 0.01
        q = Quality.BAD if bad else Quality.GOOD
        out += [Sample("state", ts, state),
                Sample("part_count", ts + 1, 0 if bad else parts % 65536, q),
                Sample("reject_count", ts + 2, rejects % 65536)]
        if products:
            out.append(Sample("product", ts + 3, product))
    return out


def deliver(store: SqliteStore, rows: list, rng: random.Random, late: list) -> None:
    """In batches of a few samples; 5 % held back to arrive late, 5 % written twice."""
    for i in range(0, len(rows), 7):
        batch = rows[i:i + 7]
        if rng.random() < 0.05:
            late.append(batch)
            continue
        store.write(batch)
        if rng.random() < 0.05:
            store.write(batch)


@pytest.fixture(scope="module", params=[None, CALENDAR], ids=["no-calendar", "calendar"])
def built(request, tmp_path_factory):
    rng = random.Random(7)
    registry = Registry(RegistryModel.model_validate(REGISTRY))
    equipment = registry.equipment_under(registry.root)
    path = tmp_path_factory.mktemp("rollup") / "store.db"
    store = SqliteStore(path)
    d = Definition(30 * S, 120 * S, 300 * S, request.param)
    buckets = SqliteBuckets(path, d.fingerprint())
    maintainer = Maintainer(store, store, buckets, lambda: equipment, d, settle_s=60)
    rows = {a.id: [(a.device, s) for s in history(a.device, rng, a.id.endswith("m2"))]
            for a in equipment}
    late: list = []
    # the plant runs: each quarter of an hour arrives, then a maintainer round
    for q in range(SPAN_S // 900 + 1):
        lo, hi = T0 + q * 900 * S, T0 + (q + 1) * 900 * S
        for aid in rows:
            deliver(store, [r for r in rows[aid] if lo <= r[1].ts < hi], rng, late)
        if q == 8:  # an outbox drains: an hour of held-back batches arrives at once
            for batch in late:
                store.write(batch)
            late.clear()
        maintainer.round(now_ns=hi)
    held = late  # still on their way when the questions are asked
    rollups = Rollups(buckets, store, d, cache_s=0)
    yield store, equipment, rollups, d, held
    store.close()


def assert_equal(got, want) -> None:
    assert set(got) == set(want)
    for k in want:
        assert got[k].ints.tolist() == want[k].ints.tolist(), k
        np.testing.assert_allclose(got[k].floats, want[k].floats, rtol=1e-9, atol=1e-6)


@st.composite
def windows(draw):
    """A window around the histories: aligned to minutes or hours, or to nothing."""
    align = draw(st.sampled_from([None, 60, 3600]))
    a = draw(st.integers(-600, SPAN_S + 600))
    b = a + draw(st.integers(1, SPAN_S + 1200))
    if align is None:
        return T0 + a * S + draw(st.integers(0, S - 1)), T0 + b * S
    return T0 + a // align * align * S, T0 + -(-b // align) * align * S


@settings(max_examples=60, deadline=None)
@given(window=windows())
def test_any_window_from_rollups_equals_raw(built, window):
    store, equipment, rollups, d, _ = built
    t0, t1 = window
    fast = QuantitySource(store, rollups)
    assert_equal(fast.per_device(equipment, d, t0, t1),
                 QuantitySource(store).per_device(equipment, d, t0, t1))


def test_buckets_are_used_and_raw_only_at_the_edges(built):
    store, equipment, rollups, d, _ = built
    fast = QuantitySource(store, rollups)
    fast.per_device(equipment, d, T0 + 3 * 60 * S + 17, T0 + 3 * 3600 * S + 5)
    # per machine: 2 whole hours and 56 minutes; raw only for the two sub-minute edges
    assert fast.answered.buckets == len(equipment) * (2 + 56)
    assert fast.answered.raw_spans == 2 * len(equipment)


def test_trend_windows_from_rollups_equal_raw(built):
    store, equipment, rollups, d, _ = built
    hours = [(T0 + h * 3600 * S, T0 + (h + 1) * 3600 * S) for h in range(5)]
    hours[0] = (hours[0][0] + 7 * S, hours[0][1])  # one unaligned start
    fast = QuantitySource(store, rollups)
    got = fast.per_window(equipment, d, hours)
    want = QuantitySource(store).per_window(equipment, d, hours)
    assert_equal({"": got}, {"": want})
    assert fast.answered.buckets > 0


def test_late_data_not_yet_applied_is_still_counted(built):
    store, equipment, rollups, d, held = built
    assert held, "the fixture keeps some batches back"
    window = (T0, T0 + SPAN_S * S)
    before = QuantitySource(store, rollups).per_device(equipment, d, *window)
    for batch in held:
        store.write(batch)
    held.clear()
    fast = QuantitySource(store, rollups)
    got = fast.per_device(equipment, d, *window)
    assert_equal(got, QuantitySource(store).per_device(equipment, d, *window))
    assert any(got[k].ints.tolist() != before[k].ints.tolist() for k in got)


def test_another_definition_is_answered_from_raw(built):
    store, equipment, rollups, d, _ = built
    other = Definition(d.stale_ns, 5 * S, d.startup_ns, d.calendar)
    fast = QuantitySource(store, rollups)
    assert_equal(fast.per_device(equipment, other, T0, T0 + 3600 * S),
                 QuantitySource(store).per_device(equipment, other, T0, T0 + 3600 * S))
    assert fast.answered.buckets == 0


# --- counts people entered (rollup/entered.py) --------------------------------------

@dataclass
class Listed:
    """Entered counts from a list (``EnteredCounts``)."""

    items: list[CountEntry]

    def entries(self, machines: list[str], t0: int, t1: int) -> list[CountEntry]:
        return [e for e in self.items if e.machine in machines and t0 <= e.at < t1]


@st.composite
def count_entries(draw):
    machines = [f"acme/p1/w/l1/{m}" for m in ("m1", "m2", "m3")]
    return [CountEntry(draw(st.sampled_from(machines)), draw(st.sampled_from(KINDS)),
                       draw(st.integers(1, 50)),
                       T0 + draw(st.integers(-600, SPAN_S + 600)) * S
                       + draw(st.integers(0, S - 1)))
            for _ in range(draw(st.integers(0, 12)))]


def ict_at(store: SqliteStore, asset, at: int) -> float | None:
    """The machine's ideal cycle time at ``at``, from its whole product series."""
    eq = asset.equipment
    if not eq.ideal_cycle_times_s:
        return eq.ideal_cycle_time_s
    product = store.read(asset.device, "product", T0 - S, T0 + 2 * SPAN_S * S)
    i = bisect.bisect_right(product.ts.tolist(), at) - 1
    return eq.ideal_cycle_times_s.get(product.text[i]) if i >= 0 else eq.ideal_cycle_time_s


@settings(max_examples=40, deadline=None)
@given(window=windows(), entered=count_entries())
def test_entered_counts_are_added_alike_to_rollups_and_raw(built, window, entered):
    store, equipment, rollups, d, _ = built
    t0, t1 = window
    got = QuantitySource(store, rollups, Listed(entered)).per_device(equipment, d, t0, t1)
    assert_equal(got, QuantitySource(store, None, Listed(entered)).per_device(
        equipment, d, t0, t1))
    bare = QuantitySource(store).per_device(equipment, d, t0, t1)
    for a in equipment:
        mine = [e for e in entered if e.machine == a.id and t0 <= e.at < t1]
        parts = [(e.quantity, ict_at(store, a, e.at)) for e in mine if e.kind == "total"]
        bad = [(e.quantity, ict_at(store, a, e.at)) for e in mine if e.kind == "reject"]
        want = {"total": sum(n for n, _ in parts), "reject": sum(n for n, _ in bad),
                "ideal_s": sum(n * c for n, c in parts if c is not None),
                "reject_ideal_s": sum(n * c for n, c in bad if c is not None),
                "startup_reject": 0, "startup_reject_ideal_s": 0}
        for name, more in want.items():
            assert got[a.id][name][0] == pytest.approx(bare[a.id][name][0] + more), name
        assert bool(got[a.id]["parts_without_ict"][0]) == (
            bare[a.id]["parts_without_ict"][0] > 0 or any(c is None for _, c in parts))
        assert got[a.id].ints.tolist() == bare[a.id].ints.tolist()  # times stay


@settings(max_examples=15, deadline=None)
@given(entered=count_entries())
def test_entered_counts_split_over_trend_windows_as_over_their_sum(built, entered):
    store, equipment, rollups, d, _ = built
    hours = [(T0 + h * 3600 * S, T0 + (h + 1) * 3600 * S) for h in range(-1, 5)]
    source = QuantitySource(store, rollups, Listed(entered))
    rows = source.per_window(equipment, d, hours)
    assert_equal({"": rows}, {"": QuantitySource(store, None, Listed(entered)).per_window(
        equipment, d, hours)})
    whole = QuantitySource(store, rollups, Listed(entered)).per_device(
        equipment, d, hours[0][0], hours[-1][1])
    np.testing.assert_allclose(rows.total().floats, sum(q.floats for q in whole.values()),
                               rtol=1e-9)
    inside = [e for e in entered if hours[0][0] <= e.at < hours[-1][1]]
    assert source.answered.count_entries == len(inside)


# --- maintainers, parameter changes, retention -------------------------------------

def yaml_copy(doc):
    return copy.deepcopy(doc)


def small_plant(tmp_path, hours: int = 3):
    rng = random.Random(3)
    registry = Registry(RegistryModel.model_validate(REGISTRY))
    equipment = registry.equipment_under(registry.root)[:2]
    path = tmp_path / "store.db"
    store = SqliteStore(path)
    rows = [(a.device, s) for a in equipment for s in history(a.device, rng, False)
            if s.ts < T0 + hours * 3600 * S]
    return store, path, equipment, rows


class Interrupting:
    """A reader that runs ``during`` once, after its first read (a write that lands while a
    maintainer is computing from what it read before)."""

    def __init__(self, store: SqliteStore, during):
        self.store, self.during = store, during

    def read(self, *args, **kw):
        out = self.store.read(*args, **kw)
        if self.during is not None:
            during, self.during = self.during, None
            during()
        return out

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_two_maintainers_never_leave_a_stale_bucket(tmp_path):
    store, path, equipment, rows = small_plant(tmp_path)
    d = Definition(30 * S, 120 * S, 300 * S)
    held = [r for r in rows if T0 + 3600 * S <= r[1].ts < T0 + 3700 * S]
    store.write([r for r in rows if r not in held])
    late = [(dev, Sample(s.tag, s.ts, s.value, s.quality)) for dev, s in held]
    end = T0 + 3 * 3600 * S
    b = Maintainer(store, store, SqliteBuckets(path, d.fingerprint()), lambda: equipment, d,
                   name="b")

    def meanwhile() -> None:  # while a computes from what it read: late rows, b's round
        store.write(late)
        b.round(now_ns=end)

    a = Maintainer(Interrupting(store, meanwhile), store,
                   SqliteBuckets(path, d.fingerprint()), lambda: equipment, d, name="a")
    a.round(now_ns=end)  # then writes what it computed from before the late rows: stale
    rollups = Rollups(SqliteBuckets(path, d.fingerprint()), store, d, live_s=10**9, cache_s=0)
    window = (T0, end - 10 * 60 * S)
    want = QuantitySource(store).per_device(equipment, d, *window)
    # a's buckets may be stale, but a's cursor says the late write is not applied by all
    fast = QuantitySource(store, rollups)
    assert_equal(fast.per_device(equipment, d, *window), want)
    a.round(now_ns=end)  # its next round recomputes: now every bucket is right
    b.round(now_ns=end)
    fast = QuantitySource(store, rollups)
    assert_equal(fast.per_device(equipment, d, *window), want)
    assert fast.answered.raw_spans == 0 and fast.answered.buckets > 0


def test_new_cycle_times_rebuild_that_machine(tmp_path):
    store, path, equipment, rows = small_plant(tmp_path)
    store.write(rows)
    d = Definition(30 * S, 120 * S, 300 * S)
    end = T0 + 3 * 3600 * S
    buckets = SqliteBuckets(path, d.fingerprint())
    Maintainer(store, store, buckets, lambda: equipment, d).round(now_ns=end)
    doc = yaml_copy(REGISTRY)
    doc["enterprises"][0]["sites"][0]["workshops"][0]["lines"][0]["equipment"][0][
        "ideal_cycle_time_s"] = 33.0
    changed = Registry(RegistryModel.model_validate(doc)).equipment_under(
        Registry(RegistryModel.model_validate(doc)).root)[:2]
    rollups = Rollups(buckets, store, d, cache_s=0)  # states read fresh after each round
    window = (T0, end - 10 * 60 * S)
    fast = QuantitySource(store, rollups)
    assert_equal(fast.per_device(changed, d, *window),
                 QuantitySource(store).per_device(changed, d, *window))
    assert fast.answered.raw_spans >= 1  # m1's buckets are of its old cycle time: raw
    Maintainer(store, store, buckets, lambda: changed, d).round(now_ns=end)
    fast = QuantitySource(store, rollups)
    assert_equal(fast.per_device(changed, d, *window),
                 QuantitySource(store).per_device(changed, d, *window))
    assert fast.answered.raw_spans == 0


def test_before_raw_retention_buckets_alone_answer_and_say_so(tmp_path):
    store, path, equipment, rows = small_plant(tmp_path)
    store.write(rows)
    d = Definition(30 * S, 120 * S, 300 * S)
    end = T0 + 3 * 3600 * S
    buckets = SqliteBuckets(path, d.fingerprint())
    Maintainer(store, store, buckets, lambda: equipment, d).round(now_ns=end)
    window = (T0 + 3600 * S + 30 * S, end - 10 * 60 * S)  # starts mid-minute
    before = QuantitySource(store).per_device(equipment, d, *window)
    cutoff = T0 + 2 * 3600 * S
    while store.delete_expired(cutoff, 100_000) == 100_000:  # retention thins the raw data
        pass
    assert store.raw_from() == cutoff
    fast = QuantitySource(store, Rollups(buckets, store, d))
    got = fast.per_device(equipment, d, *window)
    assert fast.answered.to_json()["left_out_s"] == 30.0 * len(equipment)  # the first 30 s
    rounded = QuantitySource(store, Rollups(buckets, store, d)).per_device(
        equipment, d, T0 + 3600 * S + 60 * S, window[1])
    assert_equal(got, rounded)  # the whole minutes, from buckets
    assert any(got[k].ints.tolist() != before[k].ints.tolist() for k in got)


def test_rollup_rebuild_command(tmp_path, capsys):
    from shopfloor.cli import main

    store, path, equipment, rows = small_plant(tmp_path, hours=1)
    store.write(rows)
    store.close()
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(REGISTRY))
    (tmp_path / "server.yaml").write_text(yaml.safe_dump({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(path)}},
        "rollup": {"backfill_days": 400}}))
    assert main(["rollup", "rebuild", "--config", str(tmp_path / "server.yaml")]) == 0
    assert "rebuilt 3 machines" in capsys.readouterr().out
    assert main(["rollup", "rebuild", "--config", str(tmp_path / "server.yaml"),
                 "--machine", "acme/nope"]) == 2
