"""Machine dynamics: deterministic per seed, every state in a 60 s shift, parts only
while PRODUCING, monotonic counters."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.contract import DevicePath, State
from shopfloor.simulators.codes import SHIFT_STATES, STOP_STATES
from shopfloor.simulators.machine import VALUE_PERIOD_S, Event, Kind, MachineModel
from shopfloor.simulators.scenario import DEFAULT_DURATIONS, MachineSpec, Product, Timeline

TIMELINE = Timeline(lead_in_s=3, duration_s=60, lead_out_s=3)


def spec(machine: str = "cnc-01", *, ict: float = 0.5, speed: float = 1.1,
         reject_rate: float = 0.05, products: tuple[Product, ...] = ()) -> MachineSpec:
    return MachineSpec(path=DevicePath("acme", "plant1", "machining", "line1", machine),
                       protocol="opcua", host="127.0.0.1", port=4840,
                       ideal_cycle_time_s=ict, speed_factor=speed, reject_rate=reject_rate,
                       durations_s=dict(DEFAULT_DURATIONS), products=products)


def run(model: MachineModel) -> list[Event]:
    return model.simulate(TIMELINE.total_s)


def state_changes(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind is Kind.STATE]


def test_same_seed_same_run_other_seed_other_run():
    a = run(MachineModel(spec(), TIMELINE, seed=7))
    b = run(MachineModel(spec(), TIMELINE, seed=7))
    c = run(MachineModel(spec(), TIMELINE, seed=8))
    d = run(MachineModel(spec("cnc-02"), TIMELINE, seed=7))
    assert a == b
    assert a != c
    assert a != d


@pytest.mark.parametrize("seed", range(20))
def test_timeline_and_every_state_in_a_60s_shift(seed):
    model = MachineModel(spec(), TIMELINE, seed)
    events = run(model)
    changes = state_changes(events)
    assert (changes[0].t, changes[0].state) == (0.0, State.NO_SHIFT)
    assert (changes[1].t, changes[1].state) == (3.0, State.PRODUCING)
    assert (changes[-1].t, changes[-1].state) == (63.0, State.NO_SHIFT)
    shift = changes[1:-1]
    assert {e.state for e in shift} == set(SHIFT_STATES)
    # PRODUCING alternates with stops; the first four stops are the four stop states.
    assert all((e.state is State.PRODUCING) == (i % 2 == 0) for i, e in enumerate(shift))
    assert {e.state for e in shift[1:8:2]} == set(STOP_STATES)
    # Durations within their ranges, except the one cut by the shift end.
    for cur, nxt in zip(shift, changes[2:], strict=True):
        lo, hi = DEFAULT_DURATIONS[cur.state]
        length = nxt.t - cur.t
        if nxt.t < 63.0:
            assert lo <= length <= hi
        else:
            assert 0 < length <= hi


def test_segments_cover_the_timeline_without_gaps():
    segs = []
    for seg in MachineModel(spec(), TIMELINE, 1).segments():
        segs.append(seg)
        if math.isinf(seg.end):
            break
    assert segs[0].start == 0
    assert all(a.end == b.start and a.state != b.state for a, b in pairwise(segs))
    assert segs[-1].state is State.NO_SHIFT and segs[-1].start == 63.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), ict=st.floats(0.2, 3.0), speed=st.floats(0.8, 1.5),
       reject_rate=st.floats(0, 0.99))
def test_parts_only_while_producing_and_counters_monotonic(seed, ict, speed, reject_rate):
    events = run(MachineModel(spec(ict=ict, speed=speed, reject_rate=reject_rate),
                              TIMELINE, seed))
    ts = [e.t for e in events]
    assert ts == sorted(ts)
    prev = events[0]
    producing_s = 0.0
    since = None
    for e in events:
        assert e.part_count >= prev.part_count and e.reject_count >= prev.reject_count
        assert e.reject_count <= e.part_count
        if e.kind is Kind.PART:
            assert e.state is State.PRODUCING
            assert e.part_count == prev.part_count + 1
            assert e.reject_count == prev.reject_count + e.reject
        else:
            assert (e.part_count, e.reject_count) == (prev.part_count, prev.reject_count)
        if e.kind is Kind.STATE:
            if since is not None:
                producing_s += e.t - since
            since = e.t if e.state is State.PRODUCING else None
        prev = e
    # One part per cycle of PRODUCING time (progress carried across stops).
    cycle = ict * speed
    assert int(producing_s / cycle + 1e-9) - 1 <= prev.part_count <= producing_s / cycle + 1e-9


def test_reject_rate_and_cycle_progress_across_stops():
    model = MachineModel(spec(ict=0.5, speed=1.0, reject_rate=0.3), TIMELINE, 11)
    events = run(model)
    parts = [e for e in events if e.kind is Kind.PART]
    changes = state_changes(events)
    producing = sum(b.t - a.t for a, b in pairwise(changes)
                    if a.state is State.PRODUCING)
    assert len(parts) == int(producing / 0.5 + 1e-9)
    assert 0 < parts[-1].reject_count < len(parts)
    # The first part of a PRODUCING interval comes after the rest of the cycle
    # that was left unfinished when the previous one stopped.
    done = 0.0
    for a, b in pairwise(changes):
        if a.state is not State.PRODUCING:
            continue
        inside = [p.t for p in parts if a.t <= p.t < b.t]
        if inside and done > 0:
            assert inside[0] - a.t == pytest.approx(0.5 - (done % 0.5), abs=1e-9)
        done += b.t - a.t


def test_process_value_every_half_second():
    events = run(MachineModel(spec(), TIMELINE, 5))
    values = [e for e in events if e.kind is Kind.VALUE]
    ticks = sorted({e.t for e in values} | {e.t for e in state_changes(events)})
    assert all(b - a <= VALUE_PERIOD_S + 1e-9 for a, b in pairwise(ticks))
    for e in events:
        if e.state is State.PRODUCING:
            assert 40 < e.spindle_load <= 100
        elif e.state is State.NO_SHIFT:
            assert e.spindle_load == 0
        else:
            assert 0 <= e.spindle_load < 15


def test_events_continue_in_no_shift_after_the_run():
    events = MachineModel(spec(), TIMELINE, 5).simulate(100.0)
    late = [e for e in events if e.t >= 63]
    assert late and all(e.state is State.NO_SHIFT and e.kind is not Kind.PART for e in late[1:])


PRODUCTS = (Product(id="A", ideal_cycle_time_s=0.3), Product(id="B-2", ideal_cycle_time_s=0.9),
            Product(id="C", ideal_cycle_time_s=0.6))


@pytest.mark.parametrize("seed", range(10))
def test_products_change_over_at_each_setup_and_set_the_cycle(seed):
    speed = 1.2
    events = MachineModel(spec(products=PRODUCTS, speed=speed), TIMELINE, seed).simulate(80.0)
    changes = state_changes(events)
    assert events[0].product == "A"
    # the product moves on (cyclically) exactly when a SETUP ends
    k = 0
    for prev, cur in pairwise(changes):
        k += prev.state is State.SETUP
        assert cur.product == PRODUCTS[k % 3].id, (prev, cur)
    assert k >= 1  # the first four stops include a SETUP
    assert all(e.product == changes[-1].product for e in events if e.t >= changes[-1].t)
    # within a product run, parts come every ICT x speed; a changeover starts a fresh part
    fresh = 0
    for i, (a, b) in enumerate(pairwise(changes)):
        cycle = next(p.ideal_cycle_time_s for p in PRODUCTS if p.id == a.product) * speed
        parts = [e for e in events if e.kind is Kind.PART and a.t <= e.t < b.t]
        assert all(e.product == a.product for e in events if a.t <= e.t < b.t)
        assert all(q.t - p.t == pytest.approx(cycle) for p, q in pairwise(parts))
        if parts and i and changes[i - 1].state is State.SETUP:
            assert parts[0].t - a.t == pytest.approx(cycle)
            fresh += 1
    assert fresh >= 1


def test_without_products_the_events_carry_none():
    events = run(MachineModel(spec(), TIMELINE, 3))
    assert {e.product for e in events} == {None}
