"""State timelines (Gantt): each machine's states as intervals over a window.

The state series is read as the quantities read it (staleness made
explicit, the shift calendar laid over it), so the time per state of the
intervals equals the ``/oee`` times of the same window.
"""

from __future__ import annotations

import numpy as np

from shopfloor.contract import SIGNAL_STATE, STATE_CODES
from shopfloor.server import kernels
from shopfloor.server.oee import MetricsQuery, Steps
from shopfloor.server.registry import Asset
from shopfloor.server.rollup.quantities import state_codes
from shopfloor.storage import SampleReader

STATE_NAMES = {c: s.value for s, c in STATE_CODES.items()}


def intervals(ts: np.ndarray, codes: np.ndarray, t0: int, t1: int, stale_ns: int,
              cal: Steps | None = None) -> list[tuple[int, int, int]]:
    """(start, end, code) covering [t0, t1) without gaps; neighbours differ in code.

    A sample's state holds until the next sample, for at most ``stale_ns``; after
    that and before the first sample the time is OFFLINE (as ``state_durations``).
    """
    if t1 <= t0:
        return []
    ts, codes = kernels.materialize_stale(ts, codes, stale_ns)
    if cal is not None:
        ts, codes = kernels.overlay(ts, codes, *cal)
    codes = np.where((codes >= 0) & (codes < kernels.N_STATES), codes, kernels.OFFLINE)
    starts = np.concatenate(([t0], np.clip(ts, t0, t1)))
    ends = np.concatenate((np.clip(ts, t0, t1), [t1]))
    all_codes = np.concatenate(([kernels.OFFLINE], codes))
    out: list[tuple[int, int, int]] = []
    for s, e, c in zip(starts.tolist(), ends.tolist(), all_codes.tolist(), strict=True):
        if e <= s:
            continue
        if out and out[-1][2] == c and out[-1][1] == s:
            out[-1] = (out[-1][0], e, c)
        else:
            out.append((s, e, c))
    return out


def timeline(reader: SampleReader, equipment: list[Asset], q: MetricsQuery
             ) -> list[tuple[Asset, list[tuple[int, int, str]]]]:
    """Per machine: its (start, end, state name) intervals over [q.t0, q.t1)."""
    out = []
    for a in equipment:
        assert a.device is not None
        s = reader.read(a.device, SIGNAL_STATE, q.t0, q.t1)
        rows = intervals(s.ts, state_codes(s), q.t0, q.t1, q.stale_ns, q.steps)
        out.append((a, [(b, e, STATE_NAMES[c]) for b, e, c in rows]))
    return out
