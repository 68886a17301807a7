"""Roll-up of per-equipment rows into per-segment sums (``segment_sum``), with its
plain-Python reference."""

from __future__ import annotations

import numpy as np
from numba import njit


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
