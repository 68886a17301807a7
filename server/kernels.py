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
PRODUCING = STATE_CODES[State.PRODUCING]
IDLE = STATE_CODES[State.IDLE]
DOWN = STATE_CODES[State.DOWN]
SETUP = STATE_CODES[State.SETUP]
STATE_CODES_NO_SHIFT = STATE_CODES[State.NO_SHIFT]
STATE_CODES_PLANNED_STOP = STATE_CODES[State.PLANNED_STOP]

# Indices into the array ``stop_stats`` returns.
SMALL_NS, SMALL_COUNT, SMALL_DOWN_NS, FAILURE_COUNT, FAILURE_NS, SETUP_COUNT = range(6)
N_STOP_STATS = 6


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


@njit(cache=True, nogil=True, inline="always")
def _step(prev: float, v: float, span: float) -> float:
    """Increase from ``prev`` to ``v``: a decrease is a rollover when the wrapped
    difference is below half the range (``span`` > 0), else a reset from zero."""
    d = v - prev
    if d >= 0:
        return d
    if span > 0 and 0 <= d + span < span / 2:
        return d + span
    return v


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
            total += _step(prev, v, span)
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


@njit(cache=True, nogil=True)
def counter_deltas(values: np.ndarray, bits: int) -> np.ndarray:
    """Per-sample increase of a cumulative counter (0 for the first and NaN samples),
    with the rollover/reset rule of ``counter_increase``; the deltas sum to it."""
    out = np.zeros(values.shape[0], dtype=np.float64)
    prev = np.nan
    span = 2.0 ** bits if bits > 0 else 0.0
    for i in range(values.shape[0]):
        v = values[i]
        if np.isnan(v):
            continue
        if not np.isnan(prev):
            out[i] = _step(prev, v, span)
        prev = v
    return out


def counter_deltas_ref(values: list[float], bits: int) -> list[float]:
    """Reference: each non-NaN sample's increase over the previous non-NaN sample."""
    out = [0.0] * len(values)
    prev = None
    for i, v in enumerate(values):
        if v != v:
            continue
        if prev is not None:
            out[i] = counter_increase_ref([prev, v], bits)
        prev = v
    return out


@njit(cache=True, nogil=True)
def _flush(code: int, s: int, e: int, prev: int, t0: int, t1: int, small_ns: int,
           startup_ns: int, stats: np.ndarray, win: np.ndarray, n_win: int) -> int:
    ov = min(e, t1) - max(s, t0)
    if ov < 0:
        ov = 0
    starts_in = t0 <= s < t1
    if (code == IDLE or code == DOWN) and prev == PRODUCING and e - s < small_ns:
        stats[SMALL_NS] += ov
        stats[SMALL_COUNT] += 1 if starts_in else 0
        if code == DOWN:
            stats[SMALL_DOWN_NS] += ov
    elif code == DOWN:
        stats[FAILURE_NS] += ov
        stats[FAILURE_COUNT] += 1 if starts_in else 0
    if code == SETUP and starts_in:
        stats[SETUP_COUNT] += 1
    if code == PRODUCING and prev == SETUP and startup_ns > 0:
        win[n_win, 0] = s
        win[n_win, 1] = min(s + startup_ns, e)
        n_win += 1
    return n_win


@njit(cache=True, nogil=True)
def stop_stats(ts: np.ndarray, codes: np.ndarray, t0: int, t1: int, stale_ns: int,
               horizon: int, small_ns: int, startup_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Stops, failures and start-up windows of a state series.

    The samples (read up to ``horizon`` >= t1, so a stop that starts in the window
    is seen whole) become episodes: maximal runs of one state, where staleness
    (``stale_ns``) and unknown codes make OFFLINE as in ``state_durations``. An IDLE
    or DOWN episode right after PRODUCING and shorter than ``small_ns`` is a small
    stop; other DOWN episodes are failures. Times are clipped to [t0, t1); counts
    are of episodes starting in it. Returns (stats indexed by SMALL_NS...SETUP_COUNT,
    start-up windows: [start, start + startup_ns) of each PRODUCING after SETUP,
    cut at the episode's end, as an (n, 2) array).
    """
    stats = np.zeros(N_STOP_STATS, dtype=np.int64)
    n = ts.shape[0]
    win = np.zeros((2 * n + 1, 2), dtype=np.int64)
    n_win = 0
    prev = -1
    cur, cs, ce = -1, 0, 0
    for i in range(n):
        start = ts[i]
        if start >= horizon:
            break
        end = ts[i + 1] if i + 1 < n else horizon
        end = min(end, horizon)
        fresh_end = min(end, start + stale_ns)
        code = codes[i]
        if code < 0 or code >= N_STATES:
            code = OFFLINE
        for piece in range(2):
            a = start if piece == 0 else fresh_end
            b = fresh_end if piece == 0 else end
            c = code if piece == 0 else OFFLINE
            if b <= a:
                continue
            if c == cur and a == ce:
                ce = b
            else:
                if cur >= 0:
                    n_win = _flush(cur, cs, ce, prev, t0, t1, small_ns, startup_ns,
                                   stats, win, n_win)
                prev = cur
                cur, cs, ce = c, a, b
    if cur >= 0:
        n_win = _flush(cur, cs, ce, prev, t0, t1, small_ns, startup_ns, stats, win, n_win)
    return stats, win[:n_win].copy()


def stop_stats_ref(ts: list[int], codes: list[int], t0: int, t1: int, stale_ns: int,
                   horizon: int, small_ns: int, startup_ns: int
                   ) -> tuple[list[int], list[tuple[int, int]]]:
    """Reference: build the episode list, then classify each episode."""
    pieces: list[tuple[int, int, int]] = []
    for i, (start, code) in enumerate(zip(ts, codes, strict=True)):
        if start >= horizon:
            break
        end = min(ts[i + 1] if i + 1 < len(ts) else horizon, horizon)
        fresh_end = min(end, start + stale_ns)
        pieces.append((code if 0 <= code < N_STATES else OFFLINE, start, fresh_end))
        pieces.append((OFFLINE, fresh_end, end))
    episodes: list[list[int]] = []
    for c, a, b in pieces:
        if b <= a:
            continue
        if episodes and episodes[-1][0] == c and episodes[-1][2] == a:
            episodes[-1][2] = b
        else:
            episodes.append([c, a, b])
    stats = [0] * N_STOP_STATS
    windows: list[tuple[int, int]] = []
    for j, (c, s, e) in enumerate(episodes):
        prev = episodes[j - 1][0] if j else -1
        ov = max(0, min(e, t1) - max(s, t0))
        starts_in = int(t0 <= s < t1)
        if c in (IDLE, DOWN) and prev == PRODUCING and e - s < small_ns:
            stats[SMALL_NS] += ov
            stats[SMALL_COUNT] += starts_in
            stats[SMALL_DOWN_NS] += ov if c == DOWN else 0
        elif c == DOWN:
            stats[FAILURE_NS] += ov
            stats[FAILURE_COUNT] += starts_in
        stats[SETUP_COUNT] += starts_in if c == SETUP else 0
        if c == PRODUCING and prev == SETUP and startup_ns > 0:
            windows.append((s, min(s + startup_ns, e)))
    return stats, windows


def warm_up() -> None:
    """Compile (or load from cache) every kernel, so no request pays for it."""
    ts = np.array([0, 5], dtype=np.int64)
    state_durations(ts, np.array([1, 2], dtype=np.int64), 0, 10, 10)
    counter_increase(np.array([1.0, 2.0]), 32)
    counter_deltas(np.array([1.0, 2.0]), 32)
    stop_stats(ts, np.array([1, 2], dtype=np.int64), 0, 10, 10, 12, 3, 2)
    materialize_stale(ts, np.array([1, 2], dtype=np.int64), 3)
    overlay(ts, np.array([1, 2], dtype=np.int64), ts, np.array([-1, 5], dtype=np.int64))
    bucket_durations(ts, np.array([1, 2], dtype=np.int64), ts, ts + 1, 3)
    segment_sum(np.ones((2, 2)), ts * 0, 1)


@njit(cache=True, nogil=True)
def materialize_stale(ts: np.ndarray, codes: np.ndarray, stale_ns: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The same timeline with staleness made explicit: an OFFLINE sample at
    ``ts[i] + stale_ns`` wherever the next sample comes later (or there is none),
    so the kernels give equal results on it with any larger ``stale_ns``."""
    n = ts.shape[0]
    out_ts = np.empty(2 * n, dtype=np.int64)
    out_c = np.empty(2 * n, dtype=np.int64)
    k = 0
    for i in range(n):
        out_ts[k] = ts[i]
        out_c[k] = codes[i]
        k += 1
        if i + 1 == n or ts[i + 1] > ts[i] + stale_ns:
            out_ts[k] = ts[i] + stale_ns
            out_c[k] = OFFLINE
            k += 1
    return out_ts[:k].copy(), out_c[:k].copy()


def materialize_stale_ref(ts: list[int], codes: list[int], stale_ns: int
                          ) -> tuple[list[int], list[int]]:
    out_ts: list[int] = []
    out_c: list[int] = []
    for i, (t, c) in enumerate(zip(ts, codes, strict=True)):
        out_ts.append(t)
        out_c.append(c)
        if i + 1 == len(ts) or ts[i + 1] > t + stale_ns:
            out_ts.append(t + stale_ns)
            out_c.append(OFFLINE)
    return out_ts, out_c


@njit(cache=True, nogil=True)
def overlay(ts: np.ndarray, codes: np.ndarray, cal_ts: np.ndarray, cal_codes: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """A machine state series seen through a calendar step function.

    From ``cal_ts[j]`` the calendar says ``cal_codes[j]``: a state code that
    overrides the machine (NO_SHIFT, PLANNED_STOP) or -1 (the machine's own state).
    Before ``cal_ts[0]`` and before the machine's first sample the result follows
    whichever is defined; a merged sample is emitted at every change point of
    either series (OFFLINE where the machine has no sample yet).
    """
    n, m = ts.shape[0], cal_ts.shape[0]
    out_ts = np.empty(n + m, dtype=np.int64)
    out_c = np.empty(n + m, dtype=np.int64)
    i = j = k = 0
    mach, cal = OFFLINE, -1
    while i < n or j < m:
        if j >= m or (i < n and ts[i] < cal_ts[j]):
            t = ts[i]
        else:
            t = cal_ts[j]
        while i < n and ts[i] == t:
            mach = codes[i]
            i += 1
        while j < m and cal_ts[j] == t:
            cal = cal_codes[j]
            j += 1
        out_ts[k] = t
        out_c[k] = mach if cal < 0 else cal
        k += 1
    return out_ts[:k].copy(), out_c[:k].copy()


def overlay_ref(ts: list[int], codes: list[int], cal_ts: list[int], cal_codes: list[int]
                ) -> tuple[list[int], list[int]]:
    """Reference: at each change point, look both series up."""
    def at(xs: list[int], vs: list[int], t: int, default: int) -> int:
        found = default
        for x, v in zip(xs, vs, strict=True):
            if x <= t:
                found = v
        return found

    points = sorted(set(ts) | set(cal_ts))
    out = []
    for t in points:
        cal = at(cal_ts, cal_codes, t, -1)
        out.append(at(ts, codes, t, OFFLINE) if cal < 0 else cal)
    return points, out


@njit(cache=True, nogil=True)
def bucket_durations(ts: np.ndarray, codes: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                     stale_ns: int) -> np.ndarray:
    """``state_durations`` for many buckets [starts[j], ends[j]) (ascending, disjoint)
    in one pass over the samples: an (n_buckets, N_STATES) array of ns."""
    nb = starts.shape[0]
    out = np.zeros((nb, N_STATES), dtype=np.int64)
    if nb == 0:
        return out
    t0, t1 = starts[0], ends[nb - 1]
    n = ts.shape[0]
    j = 0
    # pieces (code, a, b): before the first sample, then fresh and stale parts
    for p in range(2 * n + 1):
        if p == 0:
            a, b, code = t0, (ts[0] if n > 0 else t1), OFFLINE
        else:
            i = (p - 1) // 2
            start = ts[i]
            end = ts[i + 1] if i + 1 < n else max(t1, start)
            fresh_end = min(end, start + stale_ns)
            if p % 2 == 1:
                a, b, code = start, fresh_end, codes[i]
                if code < 0 or code >= N_STATES:
                    code = OFFLINE
            else:
                a, b, code = fresh_end, end, OFFLINE
        if b <= a:
            continue
        while j < nb and ends[j] <= a:
            j += 1
        k = j
        while k < nb and starts[k] < b:
            lo, hi = max(a, starts[k]), min(b, ends[k])
            if hi > lo:
                out[k, code] += hi - lo
            k += 1
    return out


def bucket_durations_ref(ts: list[int], codes: list[int], starts: list[int],
                         ends: list[int], stale_ns: int) -> list[list[int]]:
    """Reference: ``state_durations_ref`` bucket by bucket."""
    return [state_durations_ref(ts, codes, s, e, stale_ns) for s, e in
            zip(starts, ends, strict=True)]


@njit(cache=True, nogil=True)
def segment_sum(values: np.ndarray, seg: np.ndarray, n_seg: int) -> np.ndarray:
    """Roll-up: rows of ``values`` (n, k) summed per segment id ``seg[i]`` in
    [0, n_seg) -> (n_seg, k). Ratios are recomputed from these sums, never averaged."""
    out = np.zeros((n_seg, values.shape[1]), dtype=values.dtype)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            out[seg[i], j] += values[i, j]
    return out


def segment_sum_ref(values: list[list[float]], seg: list[int], n_seg: int
                    ) -> list[list[float]]:
    width = len(values[0]) if values else 0
    out = [[0.0] * width for _ in range(n_seg)]
    for row, s in zip(values, seg, strict=True):
        out[s] = [a + b for a, b in zip(out[s], row, strict=True)]
    return out
