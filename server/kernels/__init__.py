"""Numba kernels for the OEE time model, each with a plain-Python reference beside it.

The kernels work on arrays straight from the store: timestamps as int64
nanoseconds, state codes as int64 (``shopfloor.contract.STATE_CODES``), counter
values as float64. One module per kind: ``states`` (time per state), ``counters``
(part and reject counters), ``stops`` (small stops, failures, start-up windows),
``overlay`` (staleness and the shift calendar), ``rollup`` (sums per segment and per time bucket);
``codes`` holds the state codes they share.

The ``*_ref`` functions are the readable definitions. ``KERNELS`` pairs every
kernel with its reference and a small example that compiles it, and is the one
list the rest reads: ``warm_up`` compiles from it, tests/test_kernels*.py hold each
kernel equal to its reference on generated inputs (hypothesis), and
benchmarks/oee_kernels.py times the kernels against their references. A new kernel
goes into the module of its kind with its reference, and gets a row here and a
strategy of inputs in tests/test_kernels.py (a test fails until it has one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shopfloor.server.kernels import codes
from shopfloor.server.kernels.codes import *  # noqa: F403 (the codes the kernels share)
from shopfloor.server.kernels.counters import (
    counter_deltas,
    counter_deltas_ref,
    counter_increase,
    counter_increase_ref,
)
from shopfloor.server.kernels.overlay import (
    materialize_stale,
    materialize_stale_ref,
    overlay,
    overlay_ref,
)
from shopfloor.server.kernels.rollup import per_bucket, per_bucket_ref, segment_sum, segment_sum_ref
from shopfloor.server.kernels.states import (
    bucket_durations,
    bucket_durations_ref,
    state_durations,
    state_durations_ref,
)
from shopfloor.server.kernels.stops import stop_stats, stop_stats_ref

__all__ = [
    *codes.__all__, "KERNELS", "Kernel", "bucket_durations", "bucket_durations_ref",
    "counter_deltas", "counter_deltas_ref", "counter_increase", "counter_increase_ref",
    "materialize_stale", "materialize_stale_ref", "overlay", "overlay_ref", "per_bucket",
    "per_bucket_ref", "plain",
    "reference_args", "segment_sum", "segment_sum_ref", "state_durations",
    "state_durations_ref", "stop_stats", "stop_stats_ref", "warm_up",
]


def plain(x: Any) -> Any:
    """Arrays, tuples and numpy scalars as lists and Python numbers, so a kernel's
    answer compares with ``==`` to its reference's."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, tuple | list):
        return [plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


@dataclass(frozen=True)
class Kernel:
    """A Numba kernel, its plain-Python reference and small arguments that compile it."""

    kernel: Callable[..., Any]
    reference: Callable[..., Any]
    example: tuple[Any, ...]

    @property
    def name(self) -> str:
        return self.kernel.__name__

    def both(self, *args: Any) -> tuple[Any, Any]:
        """The kernel's and the reference's answers on ``args`` (arrays as the kernel
        takes them), as ``plain`` values."""
        return plain(self.kernel(*args)), plain(self.reference(*reference_args(args)))


def reference_args(args: tuple[Any, ...]) -> list[Any]:
    """A kernel's arguments as its reference takes them: arrays as lists."""
    return [a.tolist() if isinstance(a, np.ndarray) else a for a in args]


_TS, _CODES = np.array([0, 5], dtype=np.int64), np.array([1, 2], dtype=np.int64)
_COUNTS = np.array([1.0, 2.0])
_EDGES = np.array([0, 5, 10], dtype=np.int64)

KERNELS: dict[str, Kernel] = {k.name: k for k in (
    Kernel(state_durations, state_durations_ref, (_TS, _CODES, 0, 10, 10)),
    Kernel(bucket_durations, bucket_durations_ref, (_TS, _CODES, _TS, _TS + 1, 3)),
    Kernel(counter_increase, counter_increase_ref, (_COUNTS, 32)),
    Kernel(counter_deltas, counter_deltas_ref, (_COUNTS, 32)),
    Kernel(stop_stats, stop_stats_ref, (_TS, _CODES, _EDGES, 10, 12, 3, 2)),
    Kernel(materialize_stale, materialize_stale_ref, (_TS, _CODES, 3)),
    Kernel(overlay, overlay_ref, (_TS, _CODES, _TS, np.array([-1, 5], dtype=np.int64))),
    Kernel(segment_sum, segment_sum_ref, (np.ones((2, 2)), _TS * 0, 1)),
    Kernel(per_bucket, per_bucket_ref, (_TS, _COUNTS, _EDGES)),
)}


def warm_up() -> None:
    """Compile (or load from cache) every kernel, so no request pays for it."""
    for k in KERNELS.values():
        k.kernel(*k.example)
