"""Time per state: over one window (``state_durations``) and over many buckets in one
pass (``bucket_durations``), each with its plain-Python reference.

A state sample holds until the next sample, for at most ``stale_ns``; after that,
and before the first sample, the time is OFFLINE (no data).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shopfloor.server.kernels.codes import N_STATES, OFFLINE


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
