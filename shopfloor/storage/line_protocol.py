"""InfluxDB line protocol: escaping, ``point`` (any measurement) and ``to_lines`` (the
``samples`` measurement, fast). Names that line protocol cannot carry faithfully are
refused (``LineProtocolError``), never mangled."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

from shopfloor.contract import DevicePath, DeviceSample, Quality, Sample

from .base import PermanentWriteError, sample_value

MEASUREMENT = "samples"
PATH_TAGS = ("enterprise", "site", "area", "line", "device")


class LineProtocolError(PermanentWriteError, ValueError):
    """A name or value that line protocol cannot carry faithfully."""


def _check_name(s: str, what: str) -> None:
    # Line protocol has no escape for newlines, and InfluxDB 1.x keeps a backslash
    # before anything but , = space, so "a\" or "a\ b" cannot round-trip: reject them.
    if not s:
        raise LineProtocolError(f"{what} must not be empty")
    for ch in s:
        if ch == "\\" or ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise LineProtocolError(f"{what} {s[:80]!r} contains {ch!r}")


def escape_measurement(s: str) -> str:
    _check_name(s, "measurement")
    return s.replace(",", r"\,").replace(" ", r"\ ")


def escape_key(s: str) -> str:
    """A tag key, tag value or field key."""
    _check_name(s, "name")
    return s.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def escape_string_field(s: str) -> str:
    """A string field value, with its double quotes."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_float(x: float) -> str:
    if not math.isfinite(x):
        raise LineProtocolError(f"non-finite value {x!r}")
    return repr(float(x))


def _field(v: float | int | str) -> str:
    if isinstance(v, str):
        return escape_string_field(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v}i"
    return format_float(v)


def point(measurement: str, tags: dict[str, str], fields: dict[str, float | int | str],
          ts: int) -> str:
    """One line: tags sorted by key (InfluxDB's own order); str fields are strings, int
    fields integers."""
    if not fields:
        raise LineProtocolError("a point needs at least one field")
    head = escape_measurement(measurement)
    tag_str = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items()))
    field_str = ",".join(f"{escape_key(k)}={_field(v)}" for k, v in fields.items())
    return f"{head}{tag_str} {field_str} {int(ts)}"


def to_line(device: DevicePath, sample: Sample) -> str:
    """One ``samples`` point for a sample of a device."""
    value, text = sample_value(sample)
    fields: dict[str, float | str] = {"value_str": text} if text is not None else \
        {"value": value if value is not None else math.nan}
    fields["quality"] = str(sample.quality)
    tags = {k: getattr(device, k) for k in PATH_TAGS}
    tags["tag"] = sample.tag
    return point(MEASUREMENT, tags, fields, sample.ts)


@functools.lru_cache(maxsize=65_536)
def _series_prefix(device: DevicePath, tag: str) -> str:
    """``samples,area=..,...,tag=.. `` (tags in InfluxDB's order), escaped once per series."""
    tags = {k: getattr(device, k) for k in PATH_TAGS}
    tags["tag"] = tag
    return escape_measurement(MEASUREMENT) + "".join(
        f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items())) + " "


_QUALITY = {q: f',quality="{q}" ' for q in Quality}


def to_lines(rows: Iterable[DeviceSample]) -> list[str]:
    """The same lines as ``to_line``, fast: the escaped series part is cached per series
    and each line is one f-string (no per-sample dicts or objects)."""
    out = []
    append, isfinite, prefix, quality = out.append, math.isfinite, _series_prefix, _QUALITY
    for device, sample in rows:
        v = sample.value
        if type(v) is float and isfinite(v):
            field = f"value={v!r}"
        elif isinstance(v, str):
            field = "value_str=" + escape_string_field(v)
        else:
            x = float(v)
            if not isfinite(x):
                raise LineProtocolError(f"non-finite value {x!r}")
            field = f"value={x!r}"
        append(f"{prefix(device, sample.tag)}{field}{quality[sample.quality]}{int(sample.ts)}")
    return out
