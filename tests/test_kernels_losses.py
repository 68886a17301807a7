"""Stop/failure/start-up and counter-delta kernels equal their references (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.server import kernels as k
from tests.test_kernels import counter_series, state_series

P, IDL, D, S = k.PRODUCING, k.IDLE, k.DOWN, k.SETUP


def arr(x) -> np.ndarray:
    return np.array(x, dtype=np.int64)


@st.composite
def stop_case(draw):
    ts, codes, t0, t1, stale = draw(state_series())
    horizon = t1 + draw(st.integers(0, 60))
    return ts, codes, t0, t1, stale, horizon, draw(st.integers(0, 60)), draw(st.integers(0, 40))


@settings(max_examples=500, deadline=None)
@given(stop_case())
def test_stop_stats_equals_reference(case):
    ts, codes, *rest = case
    stats, win = k.stop_stats(arr(ts), arr(codes), *rest)
    ref_stats, ref_win = k.stop_stats_ref(ts, codes, *rest)
    assert list(stats) == ref_stats
    assert [tuple(w) for w in win.tolist()] == ref_win


@settings(max_examples=300, deadline=None)
@given(stop_case())
def test_small_stops_and_failures_split_the_down_time(case):
    ts, codes, t0, t1, stale, horizon, small, startup = case
    stats, _ = k.stop_stats(arr(ts), arr(codes), t0, t1, stale, horizon, small, startup)
    times = k.state_durations(arr(ts), arr(codes), t0, t1, stale)
    assert stats[k.FAILURE_NS] + stats[k.SMALL_DOWN_NS] == times[D]
    assert stats[k.SMALL_NS] <= times[IDL] + times[D]


def test_stop_stats_hand_example():
    # P 0-10, IDLE 10-12 (small), P 12-20, DOWN 20-23 (small), P 23-30, DOWN 30-40
    # (failure), SETUP 40-45, P 45-60; threshold 5, start-up 4.
    ts = [0, 10, 12, 20, 23, 30, 40, 45]
    codes = [P, IDL, P, D, P, D, S, P]
    stats, win = k.stop_stats(arr(ts), arr(codes), 0, 60, 100, 60, 5, 4)
    assert stats[k.SMALL_NS] == 5 and stats[k.SMALL_COUNT] == 2
    assert stats[k.SMALL_DOWN_NS] == 3
    assert stats[k.FAILURE_NS] == 10 and stats[k.FAILURE_COUNT] == 1
    assert stats[k.SETUP_COUNT] == 1
    assert win.tolist() == [[45, 49]]


def test_stop_seen_whole_beyond_the_window():
    # DOWN from 8 to 20: inside a [0, 10) window it is 2 s long, but it is no small stop.
    stats, _ = k.stop_stats(arr([0, 8, 20]), arr([P, D, P]), 0, 10, 100, 15, 5, 0)
    assert stats[k.SMALL_NS] == 0 and stats[k.FAILURE_NS] == 2
    assert stats[k.FAILURE_COUNT] == 1


@settings(max_examples=300, deadline=None)
@given(counter_series())
def test_counter_deltas_equal_reference_and_sum_to_increase(case):
    values, bits = case
    got = k.counter_deltas(np.array(values), bits)
    assert list(got) == k.counter_deltas_ref(values, bits)
    assert sum(got.tolist()) == k.counter_increase(np.array(values), bits)


@settings(max_examples=300, deadline=None)
@given(stop_case())
def test_materialized_staleness_gives_the_same_results(case):
    ts, codes, t0, t1, stale, horizon, small, startup = case
    mts, mcodes = k.materialize_stale(arr(ts), arr(codes), stale)
    assert (mts.tolist(), mcodes.tolist()) == k.materialize_stale_ref(ts, codes, stale)
    never = 2**40
    assert (k.state_durations(mts, mcodes, t0, t1, never).tolist()
            == k.state_durations(arr(ts), arr(codes), t0, t1, stale).tolist())
    got = k.stop_stats(mts, mcodes, t0, t1, never, horizon, small, startup)
    want = k.stop_stats(arr(ts), arr(codes), t0, t1, stale, horizon, small, startup)
    assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()


@st.composite
def calendar_steps(draw):
    n = draw(st.integers(0, 12))
    cal_ts = sorted(set(draw(st.lists(st.integers(-120, 700), min_size=n, max_size=n))))
    codes = draw(st.lists(st.sampled_from([-1, -1, k.STATE_CODES_NO_SHIFT,
                                           k.STATE_CODES_PLANNED_STOP]),
                          min_size=len(cal_ts), max_size=len(cal_ts)))
    return cal_ts, codes


@settings(max_examples=400, deadline=None)
@given(state_series(), calendar_steps())
def test_overlay_equals_reference(case, cal):
    ts, codes, t0, t1, stale = case
    got = k.overlay(arr(ts), arr(codes), arr(cal[0]), arr(cal[1]))
    assert (got[0].tolist(), got[1].tolist()) == k.overlay_ref(ts, codes, *cal)


@settings(max_examples=300, deadline=None)
@given(state_series(), calendar_steps())
def test_overlay_only_moves_time_into_calendar_states(case, cal):
    ts, codes, t0, t1, stale = case
    mts, mc = k.materialize_stale(arr(ts), arr(codes), stale)
    ots, oc = k.overlay(mts, mc, arr(cal[0]), arr(cal[1]))
    before = k.state_durations(mts, mc, t0, t1, 2**40)
    after = k.state_durations(ots, oc, t0, t1, 2**40)
    assert after.sum() == before.sum()
    for code in (P, IDL, D, S):  # machine states can only lose time to the calendar
        assert after[code] <= before[code]


@st.composite
def buckets(draw):
    cuts = sorted(set(draw(st.lists(st.integers(-150, 700), min_size=2, max_size=14))))
    pairs = [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if draw(st.booleans())]
    return [a for a, _ in pairs], [b for _, b in pairs]


@settings(max_examples=400, deadline=None)
@given(state_series(), buckets())
def test_bucket_durations_equal_reference(case, bk):
    ts, codes, _, _, stale = case
    got = k.bucket_durations(arr(ts), arr(codes), arr(bk[0]), arr(bk[1]), stale)
    assert got.tolist() == k.bucket_durations_ref(ts, codes, *bk, stale)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n_seg: st.tuples(
    st.just(n_seg),
    st.lists(st.tuples(st.integers(0, n_seg - 1),
                       st.lists(st.integers(-10**6, 10**6), min_size=3, max_size=3)),
             max_size=30))))
def test_segment_sum_equals_reference(case):
    n_seg, rows = case
    seg = [s for s, _ in rows]
    vals = [[float(v) for v in r] for _, r in rows]
    got = k.segment_sum(np.array(vals, dtype=np.float64).reshape(len(rows), 3),
                        arr(seg), n_seg)
    assert got.tolist() == (k.segment_sum_ref(vals, seg, n_seg) if rows
                            else [[0.0] * 3] * n_seg)
