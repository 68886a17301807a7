"""Time in the contract's unit, integer nanoseconds since the Unix epoch (UTC): the one
place that turns seconds and datetimes into ns and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NS = 1_000_000_000  # ns per second
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def seconds_ns(seconds: float) -> int:
    """A duration in seconds (a config value) as integer ns."""
    return int(seconds * 1e9)


def datetime_ns(dt: datetime) -> int:
    """A datetime (naive means UTC) as ns since the epoch, without float rounding."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return ((dt - EPOCH) // timedelta(microseconds=1)) * 1000


def iso(ns: int) -> str:
    """ns since the epoch as ISO 8601 UTC with a ``Z``."""
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat().replace("+00:00", "Z")
