"""Roll-ups equal the raw computation: machine histories written to a real embedded store
in shuffled batches, some late, some twice, buckets built by the maintainer between the
writes; then any window, aligned or not, answered from buckets plus raw edges equals the
answer from raw samples alone (counts exactly, times and ratios within 1e-9) — also right
after a late write the maintainer has not applied yet (hypothesis over windows)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.contract import DevicePath, Quality, Sample
from shopfloor.server.calendar import CalendarConfig
from shopfloor.server.registry import Registry, RegistryModel
from shopfloor.server.rollup.buckets import SqliteBuckets
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
    rollups = Rollups(buckets, store, d)
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
