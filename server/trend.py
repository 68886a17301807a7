"""OEE over time buckets (1 h, shift, day): one read per signal and equipment, one
kernel pass (``kernels.bucket_durations``) and a bincount of counter deltas."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from shopfloor.contract import SIGNAL_PART_COUNT, SIGNAL_REJECT_COUNT, SIGNAL_STATE
from shopfloor.errors import ShopfloorError
from shopfloor.server import calendar, kernels
from shopfloor.server.calendar import CalendarConfig
from shopfloor.server.oee import MetricsQuery, Totals, report, sample_cycle_times, seen_states
from shopfloor.server.registry import Asset
from shopfloor.storage import SampleReader
from shopfloor.times import NS, datetime_ns

HOUR_NS = 3600 * NS
MAX_BUCKETS = 2000


class TrendError(ShopfloorError, ValueError):
    """A request the trend cannot answer; the message says what to change."""


def buckets(granularity: str, t0: int, t1: int, cal: CalendarConfig | None
            ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Bucket starts, ends (clipped to [t0, t1)) and labels."""
    if granularity == "1h":
        first = t0 - t0 % HOUR_NS
        starts = list(range(first, t1, HOUR_NS))
        pairs = [(s, s + HOUR_NS, "") for s in starts]
    elif granularity == "day":
        tz = ZoneInfo(cal.timezone if cal else "UTC")
        day = datetime.fromtimestamp(t0 / 1e9, tz).date()
        pairs = []
        while True:
            s = datetime_ns(datetime.combine(day, datetime.min.time(), tz))
            e = datetime_ns(datetime.combine(day + timedelta(days=1), datetime.min.time(), tz))
            if s >= t1:
                break
            pairs.append((s, e, day.isoformat()))
            day += timedelta(days=1)
            if len(pairs) > MAX_BUCKETS:
                break
    elif granularity == "shift":
        if cal is None:
            raise TrendError("granularity=shift needs a shift calendar (oee.calendar in the "
                             "server config); use 1h or day")
        pairs = [(s, e, name) for name, s, e, _ in calendar.shifts(cal, t0, t1)]
    else:
        raise TrendError(f"granularity={granularity!r}: use 1h, shift or day")
    if len(pairs) > MAX_BUCKETS:
        raise TrendError(f"more than {MAX_BUCKETS} buckets; shorten the window or use a "
                         "coarser granularity")
    starts = np.array([max(s, t0) for s, _, _ in pairs], dtype=np.int64)
    ends = np.array([min(e, t1) for _, e, _ in pairs], dtype=np.int64)
    return starts, ends, [lbl for _, _, lbl in pairs]


def _per_bucket(ts: np.ndarray, deltas: np.ndarray, starts: np.ndarray, ends: np.ndarray
                ) -> np.ndarray:
    j = np.searchsorted(starts, ts, side="right") - 1
    ok = (j >= 0) & (ts < ends[np.maximum(j, 0)])
    return np.bincount(j[ok], weights=deltas[ok], minlength=len(starts))


def trend(reader: SampleReader, equipment: list[Asset], q: MetricsQuery,
          granularity: str) -> list[dict[str, Any]]:
    """One OEE report per bucket of [q.t0, q.t1) (shift and day buckets follow
    ``q.calendar``), rolled up over the equipment."""
    t0, t1 = q.t0, q.t1
    starts, ends, labels = buckets(granularity, t0, t1, q.calendar)
    nb = len(starts)
    state_ns = np.zeros((nb, kernels.N_STATES), dtype=np.int64)
    total, reject, ideal = np.zeros(nb), np.zeros(nb), np.zeros(nb)
    without_ict: list[list[str]] = [[] for _ in range(nb)]  # per bucket
    for a in equipment:
        assert a.device is not None and a.equipment is not None
        ts, codes, stale = seen_states(reader.read(a.device, SIGNAL_STATE, t0, t1), q)
        state_ns += kernels.bucket_durations(ts, codes, starts, ends, stale)
        bits = a.equipment.counter_bits
        p = reader.read(a.device, SIGNAL_PART_COUNT, t0, t1)
        r = reader.read(a.device, SIGNAL_REJECT_COUNT, t0, t1)
        deltas = kernels.counter_deltas(p.good_values(), bits)
        total += _per_bucket(p.ts, deltas, starts, ends)
        reject += _per_bucket(r.ts, kernels.counter_deltas(r.good_values(), bits), starts, ends)
        # each part at the ideal cycle time of the product then running (as /oee)
        (ict,) = sample_cycle_times(reader, a, t0, t1, p.ts)
        ideal += _per_bucket(p.ts, np.nan_to_num(ict * deltas), starts, ends)
        unknown = _per_bucket(p.ts, (np.isnan(ict) & (deltas > 0)).astype(float), starts, ends)
        for j in np.flatnonzero(unknown):
            without_ict[j].append(a.id)
    out = []
    for j in range(nb):
        tot = Totals(state_ns=state_ns[j], total=float(total[j]),
                     reject=float(min(reject[j], total[j])), ideal_s=float(ideal[j]),
                     equipment=len(equipment), without_cycle_time=without_ict[j])
        doc = report(tot)
        out.append({"start": int(starts[j]), "end": int(ends[j]), "label": labels[j],
                    **{k: doc[k] for k in ("availability", "performance", "quality", "oee",
                                           "planned_busy_time_s", "times_s", "counts",
                                           "flags")}})
    return out
