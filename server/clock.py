"""Edge clock skew over windows: whether a ``contract.CLOCK_SKEW_TAG`` marker the gateway
wrote (gateway/clock.py) says a machine's clock was off within a window [start, end).

A marker holds from its ts until the next one; a window is flagged when a nonzero marker
is in force anywhere in it: the one in force at its start, or one inside it. Markers are
few (one per step): every machine's are read at once (``SampleReader.markers``), over all
the windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shopfloor.contract import CLOCK_SKEW_TAG
from shopfloor.server.registry import Asset
from shopfloor.storage import SampleReader


def clock_skew_by_window(reader: SampleReader, equipment: Sequence[Asset],
                         starts: Sequence[int], ends: Sequence[int]) -> list[list[str]]:
    """Per window (``starts``/``ends`` ascending), the ids of the machines flagged."""
    out: list[list[str]] = [[] for _ in starts]
    if not len(starts):
        return out
    lo, hi = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    marked = reader.markers(CLOCK_SKEW_TAG, int(lo[0]), int(hi.max()))
    for asset in equipment:
        m = marked.get(asset.device.asset_id) if asset.device is not None else None
        if m is None or not np.any(m.value != 0):
            continue
        off = m.value != 0
        at_start = np.searchsorted(m.ts, lo, side="right") - 1  # the marker in force at start
        first_in = np.searchsorted(m.ts, lo, side="right")  # markers after start ...
        past_end = np.searchsorted(m.ts, hi, side="left")  # ... and before end
        cum = np.concatenate([[0], np.cumsum(off)])
        for j in range(len(lo)):
            held = at_start[j] >= 0 and off[at_start[j]]
            if held or cum[past_end[j]] - cum[first_in[j]] > 0:
                out[j].append(asset.id)
    return out
