"""Cumulative counters (parts, rejects): their increase over a series, in total
(``counter_increase``) and per sample (``counter_deltas``), with one loop and one
rollover/reset rule behind both; each with its plain-Python reference."""

from __future__ import annotations

import numpy as np
from numba import njit


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


@njit(cache=True, nogil=True, inline="always")
def _increases(values: np.ndarray, bits: int, out: np.ndarray | None) -> float:
    """The one walk over a counter's samples behind both kernels: the total increase,
    and each sample's increase written to ``out`` unless it is None (a branch Numba
    compiles away)."""
    total = 0.0
    prev = np.nan
    span = 2.0 ** bits if bits > 0 else 0.0
    for i in range(values.shape[0]):
        v = values[i]
        if np.isnan(v):
            continue
        if not np.isnan(prev):
            d = _step(prev, v, span)
            total += d
            if out is not None:
                out[i] = d
        prev = v
    return total


@njit(cache=True, nogil=True)
def counter_increase(values: np.ndarray, bits: int) -> float:
    """Total increase of a cumulative counter over its samples.

    A decrease is a rollover when the wrapped difference is less than half the
    counter's range (``bits`` > 0), otherwise a reset, after which the counter
    counted up from zero. NaN samples (no numeric value) are skipped.
    """
    return _increases(values, bits, None)


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
    _increases(values, bits, out)
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
