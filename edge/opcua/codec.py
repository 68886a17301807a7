"""OPC UA DataValues -> sample parts: ``quality_of`` a StatusCode, ``source_ts_ns`` the
timestamp a sample carries, ``plain`` a Variant's value as a JSON value."""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from datetime import UTC, datetime
from typing import Any

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


def plain(value: Any) -> Any:
    """A Variant's value as what JSON can carry: numbers, bools and strings as they are;
    LocalizedText as its text; QualifiedName as ``ns:Name``; NodeId, ExpandedNodeId and
    Guid as their strings; DateTime as ISO 8601 UTC (``...Z``, to the microsecond);
    StatusCode as its name; an array or a structure as its JSON text."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    if isinstance(value, list | tuple | dict) or dataclasses.is_dataclass(value) \
            and not isinstance(value, ua.NodeId | ua.QualifiedName | ua.StatusCode):
        return json.dumps(_json(value), separators=(",", ":"), ensure_ascii=False)
    return _json(value)


def _json(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    if isinstance(value, ua.QualifiedName):
        return f"{value.NamespaceIndex}:{value.Name}"
    if isinstance(value, ua.NodeId):
        return value.to_string()
    if isinstance(value, ua.StatusCode):
        return value.name
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        return {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)
