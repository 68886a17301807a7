"""OEE over time buckets (1 h, shift, day): the quantities of every bucket of every
machine (``QuantitySource.per_window``: roll-ups where they hold, one raw read per
machine for the rest), summed over the machines, one report per bucket."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from shopfloor.errors import ShopfloorError
from shopfloor.server import calendar
from shopfloor.server.calendar import CalendarConfig
from shopfloor.server.clock import clock_skew_by_window
from shopfloor.server.oee import MetricsQuery, Totals, lacks_cycle_time, report
from shopfloor.server.registry import Asset
from shopfloor.server.rollup.source import QuantitySource
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


def trend(source: QuantitySource, equipment: list[Asset], q: MetricsQuery,
          granularity: str) -> list[dict[str, Any]]:
    """One OEE report per bucket of [q.t0, q.t1) (shift and day buckets follow
    ``q.calendar``), rolled up over the equipment."""
    starts, ends, labels = buckets(granularity, q.t0, q.t1, q.calendar)
    rows = source.per_window(equipment, q.definition,
                             list(zip(starts.tolist(), ends.tolist(), strict=True)))
    missing = [a.id for a in equipment if lacks_cycle_time(a)]
    skewed = clock_skew_by_window(source.reader, equipment, starts.tolist(), ends.tolist())
    out = []
    for j in range(len(starts)):
        doc = report(Totals.of(rows, j, equipment=len(equipment), without_cycle_time=missing,
                               clock_skew=skewed[j]))
        out.append({"start": int(starts[j]), "end": int(ends[j]), "label": labels[j],
                    **{k: doc[k] for k in ("availability", "performance", "quality", "oee",
                                           "planned_busy_time_s", "times_s", "counts",
                                           "flags")}})
    return out
