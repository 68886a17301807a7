"""Stop episodes: small stops, failures, setups and start-up windows per time bucket
(``stop_stats``), with its plain-Python reference."""

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
def bucket_index(edges: np.ndarray, t: int) -> int:
    """Index j with edges[j] <= t < edges[j + 1], or -1 outside [edges[0], edges[-1])."""
    if edges.shape[0] < 2 or t < edges[0] or t >= edges[edges.shape[0] - 1]:
        return -1
    return np.searchsorted(edges, t, side="right") - 1


@njit(cache=True, nogil=True)
def _flush(code: int, s: int, e: int, prev: int, edges: np.ndarray, small_ns: int,
           startup_ns: int, out: np.ndarray, win: np.ndarray, n_win: int) -> int:
    nb = edges.shape[0] - 1
    small = (code == IDLE or code == DOWN) and prev == PRODUCING and e - s < small_ns
    failure = code == DOWN and not small
    if small or failure:
        j = 0 if nb > 0 and s < edges[0] else bucket_index(edges, s)
        while 0 <= j < nb and edges[j] < e:
            ov = min(e, edges[j + 1]) - max(s, edges[j])
            if ov > 0:
                if small:
                    out[j, SMALL_NS] += ov
                    if code == DOWN:
                        out[j, SMALL_DOWN_NS] += ov
                else:
                    out[j, FAILURE_NS] += ov
            j += 1
    j = bucket_index(edges, s)
    if j >= 0:
        if small:
            out[j, SMALL_COUNT] += 1
        elif failure:
            out[j, FAILURE_COUNT] += 1
        if code == SETUP:
            out[j, SETUP_COUNT] += 1
    if code == PRODUCING and prev == SETUP and startup_ns > 0:
        win[n_win, 0] = s
        win[n_win, 1] = min(s + startup_ns, e)
        n_win += 1
    return n_win


@njit(cache=True, nogil=True)
def stop_stats(ts: np.ndarray, codes: np.ndarray, edges: np.ndarray, stale_ns: int,
                 horizon: int, small_ns: int, startup_ns: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Stops, failures and start-up windows of a state series, per bucket
    [edges[j], edges[j+1]).

    The samples (read up to ``horizon`` >= edges[-1], so a stop that starts in a bucket
    is seen whole) become episodes: maximal runs of one state, where staleness
    (``stale_ns``) and unknown codes make OFFLINE as in ``state_durations``. An IDLE or
    DOWN episode right after PRODUCING and shorter than ``small_ns`` is a small stop;
    other DOWN episodes are failures. Each episode is classified once, on its whole
    length, its time added to every bucket it overlaps and its count to the bucket it
    starts in, so the rows of any partition of a span sum to the span's row. Returns
    (stats (n_buckets, N_STOP_STATS) indexed by SMALL_NS...SETUP_COUNT, start-up windows:
    [start, start + startup_ns) of each PRODUCING after SETUP, cut at the episode's end,
    as an (n, 2) array)."""
    nb = max(edges.shape[0] - 1, 0)
    out = np.zeros((nb, N_STOP_STATS), dtype=np.int64)
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
                    n_win = _flush(cur, cs, ce, prev, edges, small_ns, startup_ns, out, win,
                                   n_win)
                prev = cur
                cur, cs, ce = c, a, b
    if cur >= 0:
        n_win = _flush(cur, cs, ce, prev, edges, small_ns, startup_ns, out, win, n_win)
    return out, win[:n_win].copy()


def stop_stats_ref(ts: list[int], codes: list[int], edges: list[int], stale_ns: int,
                     horizon: int, small_ns: int, startup_ns: int
                     ) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Reference: build the episode list, then classify each episode and spread it over
    the buckets one by one."""
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
    buckets = list(zip(edges, edges[1:], strict=False))
    out = [[0] * N_STOP_STATS for _ in buckets]
    windows: list[tuple[int, int]] = []
    for j, (c, s, e) in enumerate(episodes):
        prev = episodes[j - 1][0] if j else -1
        small = c in (IDLE, DOWN) and prev == PRODUCING and e - s < small_ns
        for row, (b0, b1) in zip(out, buckets, strict=True):
            ov = max(0, min(e, b1) - max(s, b0))
            starts_in = b0 <= s < b1
            if small:
                row[SMALL_NS] += ov
                row[SMALL_DOWN_NS] += ov if c == DOWN else 0
                row[SMALL_COUNT] += starts_in
            elif c == DOWN:
                row[FAILURE_NS] += ov
                row[FAILURE_COUNT] += starts_in
            row[SETUP_COUNT] += starts_in if c == SETUP else 0
        if c == PRODUCING and prev == SETUP and startup_ns > 0:
            windows.append((s, min(s + startup_ns, e)))
    return out, windows
