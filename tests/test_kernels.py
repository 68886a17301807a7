"""The Numba kernels equal their plain-Python references on generated inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.contract import STATE_CODES, State
from shopfloor.server import kernels as k
from shopfloor.storage import Series

OFFLINE = STATE_CODES[State.OFFLINE]
PRODUCING = STATE_CODES[State.PRODUCING]


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


@settings(max_examples=400, deadline=None)
@given(state_series())
def test_state_durations_equals_reference(case):
    ts, codes, t0, t1, stale = case
    got = k.state_durations(np.array(ts, dtype=np.int64), np.array(codes, dtype=np.int64),
                            t0, t1, stale)
    assert list(got) == k.state_durations_ref(ts, codes, t0, t1, stale)


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


@settings(max_examples=400, deadline=None)
@given(counter_series())
def test_counter_increase_equals_reference(case):
    values, bits = case
    assert k.counter_increase(np.array(values), bits) == k.counter_increase_ref(values, bits)


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
