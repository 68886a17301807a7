"""Roll-up quantities: those of a span are the sum of those of any partition of it, and
reading only the documented context around a span gives the same quantities as the whole
history (hypothesis)."""

from __future__ import annotations

from datetime import date

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.contract import STATE_CODES, State
from shopfloor.server import kernels as k
from shopfloor.server.calendar import CalendarConfig
from shopfloor.server.registry import EquipmentModel
from shopfloor.server.rollup.quantities import (
    INT_FIELDS,
    Definition,
    Inputs,
    compute,
)
from shopfloor.storage import Series
from tests.test_kernels import partition

NAMES = [s.value for s in State if s is not State.OFFLINE]


def arr(x) -> np.ndarray:
    return np.array(x, dtype=np.int64)


# --- whole machine histories ---------------------------------------------------------

SPAN = 3000  # the histories' time axis, in ns


@st.composite
def history(draw, scale: int = 1, start: int = 0):
    """One machine: states, counters (resets, bad samples, out of order), products."""
    def times(n: int) -> list[int]:
        return sorted({start + draw(st.integers(0, SPAN)) * scale for _ in range(n)})

    s_ts = times(draw(st.integers(0, 40)))
    codes = [draw(st.sampled_from([*NAMES, "UNKNOWN:9"])) for _ in s_ts]
    state = Series(arr(s_ts), np.full(len(s_ts), np.nan), codes)

    def counter() -> Series:
        ts = times(draw(st.integers(0, 30)))
        values, good, v = [], [], draw(st.integers(0, 50))
        for _ in ts:
            event = draw(st.sampled_from(["inc", "inc", "inc", "reset", "bad", "swap"]))
            if event == "reset":
                v = draw(st.integers(0, 3))
            elif event != "swap":
                v += draw(st.integers(0, 5))
            values.append(float(v))
            good.append(event != "bad")
            if event == "swap" and len(values) >= 2:
                values[-1], values[-2] = values[-2], values[-1]
        return Series(arr(ts), np.array(values, dtype=np.float64), [None] * len(ts),
                      np.array(good, dtype=bool))

    p_ts = times(draw(st.integers(0, 6)))
    products = [draw(st.sampled_from(["A", "B", "Z"])) for _ in p_ts]
    return state, counter(), counter(), Series(arr(p_ts), np.full(len(p_ts), np.nan),
                                               products)


@st.composite
def equipment(draw):
    per_product = draw(st.booleans())
    return EquipmentModel(
        id="m", counter_bits=draw(st.sampled_from([0, 16, 32])),
        ideal_cycle_time_s=draw(st.sampled_from([None, 0.5])),
        ideal_cycle_times_s={"A": 0.25, "B": 2.0} if per_product else {})


@st.composite
def definition(draw, scale: int = 1):
    return Definition(stale_ns=draw(st.integers(1, 200)) * scale,
                      small_ns=draw(st.integers(0, 150)) * scale,
                      startup_ns=draw(st.integers(0, 150)) * scale)


def whole(h) -> Inputs:
    return Inputs(-(2**60), 2**60, *h)


def _take(s: Series, idx: np.ndarray) -> Series:
    good = None if s.good is None else s.good[idx]
    return Series(s.ts[idx], s.value[idx], [s.text[i] for i in idx], good)


def around(s: Series, lo: int, hi: int, before: int = 1, after: int = 0,
           good_context: bool = False) -> Series:
    """What ``SampleReader.read`` returns for these arguments."""
    ok = s.good if (good_context and s.good is not None) else np.ones(len(s), bool)
    idx = np.arange(len(s))
    prev = idx[(s.ts < lo) & ok][-before:] if before else idx[:0]
    inside = idx[(s.ts >= lo) & (s.ts < hi)]
    nxt = idx[(s.ts >= hi) & ok][:after]
    return _take(s, np.concatenate([prev, inside, nxt]).astype(np.int64))


def context(h, lo: int, hi: int, d: Definition) -> Inputs:
    state, parts, rejects, product = h
    counter = {"before": 1, "good_context": True}
    return Inputs(lo, hi, around(state, lo - d.back_ns, hi + d.small_ns),
                  around(parts, lo, hi, **counter), around(rejects, lo, hi, **counter),
                  around(product, lo, hi))


def assert_same(a, b) -> None:
    assert a.ints.tolist() == b.ints.tolist()
    np.testing.assert_allclose(a.floats, b.floats, rtol=1e-12, atol=1e-9)


@settings(max_examples=300, deadline=None)
@given(history(), equipment(), definition(), st.data())
def test_quantities_are_additive_over_any_partition(h, eq, d, data):
    lo = data.draw(st.integers(-100, SPAN))
    hi = lo + data.draw(st.integers(1, SPAN))
    edges = data.draw(partition(lo, hi))
    many = compute(whole(h), arr(edges), eq, d)
    one = compute(whole(h), arr([lo, hi]), eq, d)
    assert_same(many.total(), one)
    # state time covers each bucket exactly
    assert many.state_ns.sum(axis=1).tolist() == np.diff(edges).tolist()


@settings(max_examples=300, deadline=None)
@given(history(), equipment(), definition(), st.data())
def test_the_documented_context_is_enough(h, eq, d, data):
    lo = data.draw(st.integers(-100, SPAN))
    hi = lo + data.draw(st.integers(1, SPAN))
    edges = arr(data.draw(partition(lo, hi)))
    assert_same(compute(context(h, lo, hi, d), edges, eq, d),
                compute(whole(h), edges, eq, d))


CALENDAR = CalendarConfig.model_validate({
    "timezone": "Europe/Berlin",
    "weekly": {day: [{"name": "early", "start": "06:00", "end": "14:00",
                      "breaks": [{"start": "09:00", "end": "09:15"}]},
                     {"name": "night", "start": "22:00", "end": "06:00"}]
               for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": [date(2026, 3, 27)]})
DAY0 = 1_774_483_200 * 10**9  # 2026-03-26T00:00Z; Berlin changes to summer time on 03-29
MIN = 60 * 10**9


@settings(max_examples=150, deadline=None)
@given(history(scale=4 * MIN, start=DAY0), equipment(), definition(scale=MIN), st.data())
def test_with_a_calendar_too(h, eq, d, data):
    d = Definition(d.stale_ns, d.small_ns, d.startup_ns, CALENDAR)
    lo = DAY0 + data.draw(st.integers(0, SPAN)) * 4 * MIN
    hi = lo + data.draw(st.integers(1, SPAN)) * 4 * MIN
    edges = arr(data.draw(partition(lo, hi)))
    many = compute(context(h, lo, hi, d), edges, eq, d)
    assert_same(many, compute(whole(h), edges, eq, d))
    assert_same(many.total(), compute(whole(h), arr([lo, hi]), eq, d))


def test_field_names_are_unique():
    assert len(set(INT_FIELDS)) == len(INT_FIELDS)
    assert INT_FIELDS[:k.N_STATES] == tuple(f"{s.value.lower()}_ns" for s in STATE_CODES)


def _series(ts, values=None, text=None, good=None) -> Series:
    n = len(ts)
    return Series(arr(ts), np.array(values if values is not None else [np.nan] * n, float),
                  text or [None] * n, None if good is None else np.array(good))


def test_context_holds_the_good_baseline_before_the_span():
    # 100 good, then a bad 0 (a restarted server's placeholder): 101 in the span adds 1
    parts = _series([-20, -10, 5], [100.0, 0.0, 101.0], good=[True, False, True])
    h = (_series([-30], text=["PRODUCING"]), parts, _series([]), _series([]))
    eq, d = EquipmentModel(id="m", ideal_cycle_time_s=1.0), Definition(stale_ns=10**6)
    got = compute(context(h, 0, 10, d), arr([0, 10]), eq, d)
    assert got["total"].tolist() == [1.0]
    assert_same(got, compute(whole(h), arr([0, 10]), eq, d))


def test_context_holds_a_start_up_window_that_began_before_the_span():
    # SETUP until -10, then PRODUCING: a reject at 5 is within the 30 ns start-up window
    state = _series([-40, -10], text=["SETUP", "PRODUCING"])
    rejects = _series([-50, 5], [0.0, 1.0])
    h = (state, rejects, rejects, _series([]))
    eq = EquipmentModel(id="m", ideal_cycle_time_s=1.0)
    d = Definition(stale_ns=10**6, small_ns=5, startup_ns=30)
    got = compute(context(h, 0, 10, d), arr([0, 10]), eq, d)
    assert got["startup_reject"].tolist() == [1.0]
    assert_same(got, compute(whole(h), arr([0, 10]), eq, d))
