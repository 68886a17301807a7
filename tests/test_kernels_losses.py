"""Properties of the stop, counter, staleness and calendar kernels beyond equality with
their references (tests/test_kernels.py holds every kernel to its reference)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

from shopfloor.server import kernels as k
from tests.test_kernels import arr, calendar_steps, counter_series, state_series, stop_case

P, IDL, D, S = k.PRODUCING, k.IDLE, k.DOWN, k.SETUP


@settings(max_examples=300, deadline=None)
@given(stop_case())
def test_small_stops_and_failures_split_the_down_time(case):
    ts, codes, edges, stale, horizon, small, startup = case
    stats, _ = k.stop_stats(arr(ts), arr(codes), arr(edges), stale, horizon, small, startup)
    times = k.bucket_durations(arr(ts), arr(codes), arr(edges[:-1]), arr(edges[1:]), stale)
    assert (stats[:, k.FAILURE_NS] + stats[:, k.SMALL_DOWN_NS] == times[:, D]).all()
    assert (stats[:, k.SMALL_NS] <= times[:, IDL] + times[:, D]).all()


@settings(max_examples=300, deadline=None)
@given(stop_case())
def test_stop_stats_of_a_partition_sum_to_the_whole(case):
    ts, codes, edges, stale, horizon, small, startup = case
    many, win = k.stop_stats(arr(ts), arr(codes), arr(edges), stale, horizon, small, startup)
    one, win1 = k.stop_stats(arr(ts), arr(codes), arr([edges[0], edges[-1]]), stale, horizon,
                             small, startup)
    assert many.sum(axis=0).tolist() == one.sum(axis=0).tolist()
    assert win.tolist() == win1.tolist()


def test_stop_stats_hand_example():
    # P 0-10, IDLE 10-12 (small), P 12-20, DOWN 20-23 (small), P 23-30, DOWN 30-40
    # (failure), SETUP 40-45, P 45-60; threshold 5, start-up 4.
    ts = [0, 10, 12, 20, 23, 30, 40, 45]
    codes = [P, IDL, P, D, P, D, S, P]
    (stats,), win = k.stop_stats(arr(ts), arr(codes), arr([0, 60]), 100, 60, 5, 4)
    assert stats[k.SMALL_NS] == 5 and stats[k.SMALL_COUNT] == 2
    assert stats[k.SMALL_DOWN_NS] == 3
    assert stats[k.FAILURE_NS] == 10 and stats[k.FAILURE_COUNT] == 1
    assert stats[k.SETUP_COUNT] == 1
    assert win.tolist() == [[45, 49]]


def test_stop_seen_whole_beyond_the_window():
    # DOWN from 8 to 20: inside a [0, 10) window it is 2 s long, but it is no small stop.
    (stats,), _ = k.stop_stats(arr([0, 8, 20]), arr([P, D, P]), arr([0, 10]), 100, 15, 5, 0)
    assert stats[k.SMALL_NS] == 0 and stats[k.FAILURE_NS] == 2
    assert stats[k.FAILURE_COUNT] == 1
    # split at 9, the DOWN counts in the bucket it starts in, its time in both
    stats, _ = k.stop_stats(arr([0, 8, 20]), arr([P, D, P]), arr([0, 9, 10]), 100, 15, 5, 0)
    assert stats[:, k.FAILURE_NS].tolist() == [1, 1]
    assert stats[:, k.FAILURE_COUNT].tolist() == [1, 0]


@settings(max_examples=300, deadline=None)
@given(counter_series())
def test_counter_deltas_sum_to_the_increase(case):
    values, bits = case
    got = k.counter_deltas(np.array(values), bits)
    assert sum(got.tolist()) == k.counter_increase(np.array(values), bits)


@settings(max_examples=300, deadline=None)
@given(stop_case())
def test_materialized_staleness_gives_the_same_results(case):
    ts, codes, edges, stale, horizon, small, startup = case
    t0, t1 = edges[0], edges[-1]
    mts, mcodes = k.materialize_stale(arr(ts), arr(codes), stale)
    never = 2**40
    assert (k.state_durations(mts, mcodes, t0, t1, never).tolist()
            == k.state_durations(arr(ts), arr(codes), t0, t1, stale).tolist())
    got = k.stop_stats(mts, mcodes, arr(edges), never, horizon, small, startup)
    want = k.stop_stats(arr(ts), arr(codes), arr(edges), stale, horizon, small, startup)
    assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()


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
