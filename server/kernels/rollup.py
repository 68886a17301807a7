"""Sums for roll-ups: per-equipment rows into per-segment sums (``segment_sum``) and
per-sample values into time buckets (``per_bucket``), each with its plain-Python
reference."""

from __future__ import annotations

import numpy as np
from numba import njit

from shopfloor.server.kernels.stops import bucket_index


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
    """Reference: add each row to its segment's row."""
    width = len(values[0]) if values else 0
    out = [[0.0] * width for _ in range(n_seg)]
    for row, s in zip(values, seg, strict=True):
        out[s] = [a + b for a, b in zip(out[s], row, strict=True)]
    return out


@njit(cache=True, nogil=True)
def per_bucket(ts: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Sum of ``values`` per bucket of their ``ts`` (samples outside the edges dropped)."""
    nb = max(edges.shape[0] - 1, 0)
    out = np.zeros(nb, dtype=np.float64)
    if nb == 0:
        return out
    for i in range(ts.shape[0]):
        j = bucket_index(edges, ts[i])
        if j >= 0:
            out[j] += values[i]
    return out


def per_bucket_ref(ts: list[int], values: list[float], edges: list[int]) -> list[float]:
    out = [0.0] * max(len(edges) - 1, 0)
    for t, v in zip(ts, values, strict=True):
        for j, (b0, b1) in enumerate(zip(edges, edges[1:], strict=False)):
            if b0 <= t < b1:
                out[j] += v
    return out
