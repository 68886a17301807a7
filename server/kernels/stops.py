"""Stop episodes: small stops, failures, setups and start-up windows (``stop_stats``),
with its plain-Python reference."""

from __future__ import annotations

import numpy as np
from numba import njit

from shopfloor.server.kernels.codes import (
    DOWN,
    FAILURE_COUNT,
    FAILURE_NS,
    IDLE,
    N_STATES,
    N_STOP_STATS,
    OFFLINE,
    PRODUCING,
    SETUP,
    SETUP_COUNT,
    SMALL_COUNT,
    SMALL_DOWN_NS,
    SMALL_NS,
)


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
