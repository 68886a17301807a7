"""The shift calendar laid over a state series: staleness made explicit first
(``materialize_stale``), then the calendar's step function over it (``overlay``);
each with its plain-Python reference."""

from __future__ import annotations

import numpy as np
from numba import njit

from shopfloor.server.kernels.codes import OFFLINE


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
    """Reference: each sample, then an OFFLINE sample where it goes stale."""
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
