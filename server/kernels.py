"""Numba kernels for the OEE time model, each with a plain-Python reference beside it.

The kernels work on arrays straight from the store: timestamps as int64
nanoseconds, state codes as int64 (``shopfloor.contract.STATE_CODES``), counter
values as float64. The ``*_ref`` functions are the readable definitions; property
tests hold each kernel equal to its reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shopfloor.contract import STATE_CODES, State

N_STATES = len(STATE_CODES)
OFFLINE = STATE_CODES[State.OFFLINE]


@njit(cache=True, nogil=True)
def state_durations(ts: np.ndarray, codes: np.ndarray, t0: int, t1: int,
                    stale_ns: int) -> np.ndarray:
    """Nanoseconds spent in each state within [t0, t1).

    Each sample's state holds until the next sample, but for at most ``stale_ns``:
    after that, and before the first sample, the time is OFFLINE (no data).
    ``ts`` is ascending and may start before ``t0`` (the carried-in state).
    Codes outside [0, N_STATES) count as OFFLINE.
    """
    out = np.zeros(N_STATES, dtype=np.int64)
    if t1 <= t0:
        return out
    n = ts.shape[0]
    if n == 0 or ts[0] >= t1:
        out[OFFLINE] += t1 - t0
        return out
    if ts[0] > t0:
        out[OFFLINE] += ts[0] - t0
    for i in range(n):
        start = ts[i]
        if start >= t1:
            break
        end = ts[i + 1] if i + 1 < n else t1
        if end <= t0:
            continue
        fresh_end = min(end, start + stale_ns)
        code = codes[i]
        if code < 0 or code >= N_STATES:
            code = OFFLINE
        a = max(start, t0)
        b = min(fresh_end, t1)
        if b > a:
            out[code] += b - a
        a = max(fresh_end, t0)
        b = min(end, t1)
        if b > a:
            out[OFFLINE] += b - a
    return out


def state_durations_ref(ts: list[int], codes: list[int], t0: int, t1: int,
                        stale_ns: int) -> list[int]:
    """Reference: walk the timeline one interval at a time."""
    out = [0] * N_STATES
    if t1 <= t0:
        return out

    def add(code: int, a: int, b: int) -> None:
        lo, hi = max(a, t0), min(b, t1)
        if hi > lo:
            out[code if 0 <= code < N_STATES else OFFLINE] += hi - lo

    if not ts:
        add(OFFLINE, t0, t1)
        return out
    add(OFFLINE, t0, ts[0])
    for i, (start, code) in enumerate(zip(ts, codes, strict=True)):
        end = ts[i + 1] if i + 1 < len(ts) else max(t1, start)
        fresh_end = min(end, start + stale_ns)
        add(code, start, fresh_end)
        add(OFFLINE, fresh_end, end)
    return out


@njit(cache=True, nogil=True)
def counter_increase(values: np.ndarray, bits: int) -> float:
    """Total increase of a cumulative counter over its samples.

    A decrease is a rollover when the wrapped difference is less than half the
    counter's range (``bits`` > 0), otherwise a reset, after which the counter
    counted up from zero. NaN samples (no numeric value) are skipped.
    """
    total = 0.0
    prev = np.nan
    span = 2.0 ** bits if bits > 0 else 0.0
    for i in range(values.shape[0]):
        v = values[i]
        if np.isnan(v):
            continue
        if not np.isnan(prev):
            d = v - prev
            if d >= 0:
                total += d
            elif bits > 0 and 0 <= d + span < span / 2:
                total += d + span
            else:
                total += v
        prev = v
    return total


def counter_increase_ref(values: list[float], bits: int) -> float:
    """Reference: pairwise differences of the non-NaN samples."""
    clean = [v for v in values if v == v]
    total = 0.0
    for prev, cur in zip(clean, clean[1:], strict=False):
        if cur >= prev:
            total += cur - prev
        elif bits > 0 and 0 <= cur + 2.0**bits - prev < 2.0**bits / 2:
            total += cur + 2.0**bits - prev  # rollover
        else:
            total += cur  # reset: counted up from zero
    return total


def warm_up() -> None:
    """Compile (or load from cache) every kernel, so no request pays for it."""
    ts = np.array([0, 5], dtype=np.int64)
    state_durations(ts, np.array([1, 2], dtype=np.int64), 0, 10, 10)
    counter_increase(np.array([1.0, 2.0]), 32)
