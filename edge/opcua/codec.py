"""OPC UA DataValues -> sample parts: ``quality_of`` a StatusCode, ``source_ts_ns`` the
timestamp a sample carries."""

from __future__ import annotations

from asyncua import ua

from shopfloor.contract import Quality
from shopfloor.times import datetime_ns

from ..driver import now_ns


def quality_of(status: ua.StatusCode | None) -> Quality:
    """The OPC UA StatusCode's severity class (top two bits)."""
    if status is None:
        return Quality.GOOD
    severity = status.value >> 30
    return Quality.GOOD if severity == 0 else Quality.UNCERTAIN if severity == 1 else Quality.BAD


def source_ts_ns(dv: ua.DataValue) -> int:
    """SourceTimestamp, else ServerTimestamp, else the time it was received."""
    for ts in (dv.SourceTimestamp, dv.ServerTimestamp):
        if ts is not None and ts.year > 1601:  # 1601 = OPC UA's "no timestamp"
            return datetime_ns(ts)
    return now_ns()
