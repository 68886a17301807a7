"""OEE routes over a window: ``/oee``, ``/losses``, ``/trend``, ``/timeline``.

Each takes the shared ``Window`` (scope, start, end) and asks ``oee``, ``losses``,
``trend`` or ``timeline`` through the window's ``MetricsQuery``. Route-specific parameters
are dependencies declared after the window, so they follow scope/start/end in the
OpenAPI document as they always have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from shopfloor.server import losses, oee, timeline, trend
from shopfloor.server.api.deps import ConfigDep, ReaderDep, SourceDep, WindowDep
from shopfloor.server.rollup.source import QuantitySource
from shopfloor.times import iso

MAX_INTERVALS = 50_000
Granularity = Literal["1h", "shift", "day"]

router = APIRouter(prefix="/api/v1", tags=["metrics"])


@dataclass(frozen=True)
class LossThresholds:
    """The small-stop threshold and start-up window of ``/losses``, in seconds."""

    small_stop_s: float
    startup_s: float


async def _thresholds(
    config: ConfigDep,
    small_stop_s: Annotated[float | None, Query(
        ge=0, le=86400, description="small-stop threshold; default from the config")] = None,
    startup_s: Annotated[float | None, Query(
        ge=0, le=86400, description="start-up window after setups; default from config")
    ] = None,
) -> LossThresholds:
    return LossThresholds(config.oee.small_stop_s if small_stop_s is None else small_stop_s,
                          config.oee.startup_s if startup_s is None else startup_s)


async def _granularity(granularity: Annotated[Granularity, Query(
        description="1h, day (calendar's zone) or shift (needs a calendar)")] = "1h",
) -> Granularity:
    return granularity


def answered(doc: dict[str, Any], source: QuantitySource) -> dict[str, Any]:
    """``doc`` with how it was answered (roll-up buckets, raw spans); where the store no
    longer keeps raw samples for part of the window, flagged ``raw_retention``."""
    how = source.answered.to_json()
    if "left_out_s" in how:
        for d in [doc, *doc.get("buckets", [])]:
            if "flags" in d:
                d["flags"].append("raw_retention")
    return {**doc, "answered_from": how}


@router.get("/oee")
def get_oee(window: WindowDep, source: SourceDep) -> dict[str, Any]:
    """OEE with availability, performance and quality for one asset and window.

    Times and counts are summed over the equipment under the asset and the
    ratios recomputed from the sums. A ratio is null when its denominator is
    zero. The window end is clipped to now.
    """
    doc = oee.compute(source, window.equipment, window.query())
    return answered({**window.head(), **doc}, source)


@router.get("/losses")
def get_losses(window: WindowDep, thresholds: Annotated[LossThresholds, Depends(_thresholds)],
               source: SourceDep) -> dict[str, Any]:
    """The six big losses in seconds (summing to PBT minus fully productive time),
    small stops, MTBF, MTTR, failure count, technical efficiency, setup and scrap
    ratios, with the OEE they explain. See METRICS.md for every formula."""
    q = window.query(thresholds.small_stop_s, thresholds.startup_s)
    totals = oee.totals_of(source, window.equipment, q)
    return answered({**window.head(), "small_stop_threshold_s": thresholds.small_stop_s,
                     "startup_window_s": thresholds.startup_s,
                     **losses.report_losses(totals)}, source)


@router.get("/trend")
def get_trend(window: WindowDep, granularity: Annotated[Granularity, Depends(_granularity)],
              source: SourceDep) -> dict[str, Any]:
    """OEE, its parts and the time per state for each bucket of the window; buckets
    are clipped to the window and rolled up like /oee (sums, then ratios)."""
    try:
        rows = trend.trend(source, window.equipment, window.query(), granularity)
    except trend.TrendError as exc:
        raise HTTPException(422, str(exc)) from None
    for r in rows:
        r["start"], r["end"] = iso(r["start"]), iso(r["end"])
    return answered({"scope": window.asset.id, "level": window.asset.level,
                     "granularity": granularity, "start": iso(window.t0),
                     "end": iso(window.t1), "buckets": rows}, source)


@router.get("/timeline")
def get_timeline(window: WindowDep, reader: ReaderDep) -> dict[str, Any]:
    """The state timeline (Gantt) of each piece of equipment under ``scope``:
    intervals covering the window, neighbours in different states, read like
    /oee (stale data and time before the first sample OFFLINE, the shift calendar
    laid over), so their time per state equals /oee's ``times_s``."""
    rows = timeline.timeline(reader, window.equipment, window.query())
    if sum(len(iv) for _, iv in rows) > MAX_INTERVALS:
        raise HTTPException(422, f"more than {MAX_INTERVALS} state intervals; "
                                 "shorten the window or pick a smaller scope")
    return {**window.head(), "equipment": [{"id": a.id, "name": a.name, "intervals": [
        {"state": s, "start": iso(b), "end": iso(e)} for b, e, s in iv]} for a, iv in rows]}
