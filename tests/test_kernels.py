"""The Numba kernels equal their plain-Python references on generated inputs: one
property test over ``kernels.KERNELS``, with a strategy of arguments per kernel
(``CASES``); a kernel without one fails ``test_every_kernel_has_generated_cases``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba.core.registry import CPUDispatcher

from shopfloor.contract import STATE_CODES, State
from shopfloor.server import kernels as k
from shopfloor.storage import Series

OFFLINE = STATE_CODES[State.OFFLINE]
PRODUCING = STATE_CODES[State.PRODUCING]


def arr(x) -> np.ndarray:
    return np.array(x, dtype=np.int64)


@st.composite
def state_series(draw):
    """Irregular state samples, possibly starting before the window, with gaps."""
    n = draw(st.integers(0, 40))
    gaps = draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
    start = draw(st.integers(-100, 100))
    ts = list(np.cumsum(gaps) + start) if n else []
    codes = draw(st.lists(st.integers(-1, k.N_STATES + 1), min_size=n, max_size=n))
    t0 = draw(st.integers(-50, 200))
    t1 = t0 + draw(st.integers(0, 600))
    stale = draw(st.integers(1, 80))
    return [int(t) for t in ts], codes, t0, t1, stale


@st.composite
def partition(draw, t0: int, t1: int) -> list[int]:
    """Bucket edges: t0, t1 and a few cuts between."""
    return sorted({t0, t1, *draw(st.lists(st.integers(t0, t1), max_size=6))})


@st.composite
def stop_case(draw):
    """A state series, bucket edges over [t0, t1], staleness, horizon, thresholds."""
    ts, codes, t0, t1, stale = draw(state_series())
    horizon = t1 + draw(st.integers(0, 60))
    return (ts, codes, draw(partition(t0, t1)), stale, horizon, draw(st.integers(0, 60)),
            draw(st.integers(0, 40)))


@st.composite
def calendar_steps(draw):
    n = draw(st.integers(0, 12))
    cal_ts = sorted(set(draw(st.lists(st.integers(-120, 700), min_size=n, max_size=n))))
    codes = draw(st.lists(st.sampled_from([-1, -1, k.STATE_CODES_NO_SHIFT,
                                           k.STATE_CODES_PLANNED_STOP]),
                          min_size=len(cal_ts), max_size=len(cal_ts)))
    return cal_ts, codes


@st.composite
def buckets(draw):
    cuts = sorted(set(draw(st.lists(st.integers(-150, 700), min_size=2, max_size=14))))
    pairs = [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if draw(st.booleans())]
    return [a for a, _ in pairs], [b for _, b in pairs]


@st.composite
def segment_rows(draw):
    """(values, segment ids, n_seg): at least one row of three values."""
    n_seg = draw(st.integers(1, 6))
    rows = draw(st.lists(st.tuples(st.integers(0, n_seg - 1),
                                   st.lists(st.integers(-10**6, 10**6), min_size=3,
                                            max_size=3)), min_size=1, max_size=30))
    values = np.array([[float(v) for v in r] for _, r in rows], dtype=np.float64)
    return values, arr([s for s, _ in rows]), n_seg


def _states(case):
    ts, codes, t0, t1, stale = case
    return arr(ts), arr(codes), t0, t1, stale


def _counter(case):
    values, bits = case
    return np.array(values), bits


@settings(max_examples=400, deadline=None)
@given(state_series())
def test_state_durations_cover_the_window_exactly(case):
    ts, codes, t0, t1, stale = case
    got = k.state_durations(np.array(ts, dtype=np.int64), np.array(codes, dtype=np.int64),
                            t0, t1, stale)
    assert got.sum() == max(t1 - t0, 0)
    assert (got >= 0).all()


def test_state_durations_hand_example():
    # IDLE carried in from before the window goes stale after 3; DOWN 3..6 then stale;
    # an unknown code (99) is OFFLINE.
    idle, down = STATE_CODES[State.IDLE], STATE_CODES[State.DOWN]
    got = k.state_durations(np.array([-5, 3, 7], dtype=np.int64),
                            np.array([idle, down, 99], dtype=np.int64), 0, 10, 3)
    assert got[down] == 3 and got[OFFLINE] == 7 and got[idle] == 0


def test_no_data_is_offline_never_running():
    got = k.state_durations(np.array([], dtype=np.int64), np.array([], dtype=np.int64),
                            0, 100, 10)
    assert got[OFFLINE] == 100 and got[PRODUCING] == 0


@st.composite
def counter_series(draw):
    """A counter that counts up, sometimes resets, sometimes rolls over, sometimes NaN."""
    bits = draw(st.sampled_from([0, 16, 32]))
    top = 2**bits if bits else 2**40
    v = draw(st.integers(0, top - 1))
    out = [float(v)]
    for _ in range(draw(st.integers(0, 30))):
        event = draw(st.sampled_from(["inc", "inc", "inc", "reset", "nan"]))
        if event == "inc":
            v = (v + draw(st.integers(0, 1000))) % top
            out.append(float(v))
        elif event == "reset":
            v = draw(st.integers(0, 5))
            out.append(float(v))
        else:
            out.append(float("nan"))
    return out, bits


def test_counter_rollover_and_reset():
    top = 2.0**16
    # 65530 -> 4 is a rollover (+10); 4 -> 2 is a reset (+2); 2 -> 5 (+3)
    assert k.counter_increase(np.array([65530.0, 4.0, 2.0, 5.0]), 16) == 15.0
    # without a bit width a decrease is always a reset
    assert k.counter_increase(np.array([10.0, 3.0]), 0) == 3.0
    assert k.counter_increase(np.array([top - 1, top - 1]), 16) == 0.0


def test_bad_quality_counter_values_are_skipped_alike():
    # 5 -> 6, a bad-quality placeholder 0, then 7: one more part, not a reset (8 parts)
    s = Series(np.array([1, 2, 3, 4]), np.array([5.0, 6.0, 0.0, 7.0]), [None] * 4,
               np.array([True, True, False, True]))
    values = s.good_values()
    assert k.counter_increase(values, 32) == k.counter_increase_ref(values.tolist(), 32) == 2
    assert k.counter_deltas(values, 32).tolist() == k.counter_deltas_ref(values.tolist(), 32) \
        == [0, 1, 0, 1]
    assert k.counter_increase(s.value, 32) == 8  # what the raw values would say


# Each kernel's generated arguments, as the kernel takes them (Kernel.both hands the
# reference the same as lists).
CASES = {
    "state_durations": state_series().map(_states),
    "bucket_durations": st.tuples(state_series(), buckets()).map(
        lambda c: (*_states(c[0])[:2], arr(c[1][0]), arr(c[1][1]), c[0][4])),
    "counter_increase": counter_series().map(_counter),
    "counter_deltas": counter_series().map(_counter),
    "stop_stats": stop_case().map(lambda c: (arr(c[0]), arr(c[1]), arr(c[2]), *c[3:])),
    "materialize_stale": state_series().map(lambda c: (arr(c[0]), arr(c[1]), c[4])),
    "overlay": st.tuples(state_series(), calendar_steps()).map(
        lambda c: (arr(c[0][0]), arr(c[0][1]), arr(c[1][0]), arr(c[1][1]))),
    "segment_sum": segment_rows(),
    "per_bucket": st.tuples(state_series(), st.data()).map(lambda c: (
        arr(c[0][0]), np.arange(len(c[0][0]), dtype=np.float64),
        arr(c[1].draw(partition(c[0][2], c[0][3]))))),
}


def test_every_kernel_has_generated_cases():
    compiled = {n for n, f in vars(k).items()
                if isinstance(f, CPUDispatcher) and not n.startswith("_")}
    assert set(k.KERNELS) == compiled == set(CASES)


@pytest.mark.parametrize("name", sorted(k.KERNELS))
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_kernel_equals_its_reference(name, data):
    got, want = k.KERNELS[name].both(*data.draw(CASES[name]))
    assert got == want


def test_segment_sum_of_no_rows_is_zero():
    got = k.segment_sum(np.zeros((0, 3)), arr([]), 2)
    assert got.tolist() == [[0.0] * 3] * 2
