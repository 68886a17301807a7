"""Raw device values -> published samples: signal names, value maps, counter widths.

``Mapper(tags).sample(tag, raw, ts, quality)`` is the one entry point; ``meta_payload``
builds the retained ``meta`` message; ``ReportByException`` decides what to publish.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shopfloor.contract import MAX_STRING_VALUE, Quality, Sample
from shopfloor.times import seconds_ns

from .device import TagBase

Raw = float | int | bool | str


def map_value(tag: TagBase, raw: Any, quality: Quality) -> tuple[Raw, Quality] | None:
    """The published value and quality for ``raw``, or None if it cannot be published."""
    if raw is None:
        return None
    if tag.map is not None:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw != int(raw):
            return f"UNKNOWN:{raw}"[:MAX_STRING_VALUE], Quality.UNCERTAIN
        code = int(raw)
        if code in tag.map:
            return tag.map[code], quality
        return f"UNKNOWN:{code}", Quality.UNCERTAIN
    if isinstance(raw, bool | int):
        if tag.bits is not None and not isinstance(raw, bool):
            raw = raw % (1 << tag.bits)  # a counter wider than the device's is a config error
        return raw, quality
    if isinstance(raw, float):
        if not math.isfinite(raw):  # JSON has no NaN: the text, quality bad (NaN stored)
            return ("NaN" if math.isnan(raw) else "Infinity" if raw > 0 else "-Infinity",
                    Quality.BAD)
        return raw, quality
    if isinstance(raw, str):
        if len(raw) > MAX_STRING_VALUE:  # cut: no longer the device's value
            return raw[:MAX_STRING_VALUE], max(quality, Quality.UNCERTAIN, key=_SEVERITY.get)
        return raw, quality
    if isinstance(raw, bytes):
        return raw.hex()[:MAX_STRING_VALUE], quality
    return str(raw)[:MAX_STRING_VALUE], quality


_SEVERITY = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}


def to_sample(tag: TagBase, raw: Any, ts_ns: int, quality: Quality = Quality.GOOD) -> Sample | None:
    mapped = map_value(tag, raw, quality)
    if mapped is None:
        return None
    value, q = mapped
    return Sample(tag.published_name, ts_ns, value, q)


def tag_type(tag: TagBase) -> str | None:
    if tag.map is not None:
        return "string"
    if tag.value_type is not None:
        return tag.value_type
    if tag.bits is not None:
        return f"uint{tag.bits}"
    return None


def meta_payload(agent: str, tags: Sequence[TagBase]) -> bytes:
    """The retained ``meta`` message of one device."""
    return json.dumps({
        "v": 1, "agent": agent,
        "tags": [{"name": t.published_name, "signal": t.signal, "unit": t.unit,
                  "type": tag_type(t)} for t in tags],
    }).encode()


@dataclass(slots=True)
class _Last:
    value: Raw
    quality: Quality
    sent_ns: int  # monotonic time it was last published
    current: bool = True  # read in this session (``forget`` clears it)


CHANGE, HEARTBEAT = "change", "heartbeat"


class ReportByException:
    """Publish a tag only when its value or quality changes, or ``heartbeat_s`` has passed.

    ``forget()`` (a new session) keeps each tag's last value (for a bad-quality sample of a
    tag that is not read again) but no longer heartbeats it: a value is re-published as
    good only once it has been read in the current session."""

    def __init__(self, heartbeat_s: float):
        self.heartbeat_ns = seconds_ns(heartbeat_s)
        self._last: dict[str, _Last] = {}

    def should_publish(self, sample: Sample, now_mono_ns: int) -> str | None:
        """``CHANGE`` (a new value or quality, or the first of this session), ``HEARTBEAT``
        (unchanged for ``heartbeat_s``: stamp it with the time it was read) or None."""
        last = self._last.get(sample.tag)
        if (last is not None and last.current and last.value == sample.value
                and type(last.value) is type(sample.value) and last.quality == sample.quality):
            if now_mono_ns - last.sent_ns < self.heartbeat_ns:
                return None
            last.sent_ns = now_mono_ns
            return HEARTBEAT
        self._last[sample.tag] = _Last(sample.value, sample.quality, now_mono_ns)
        return CHANGE

    def note(self, sample: Sample, now_mono_ns: int) -> None:
        """Record a sample published regardless (e.g. an OPC UA data change)."""
        self._last[sample.tag] = _Last(sample.value, sample.quality, now_mono_ns)

    def due(self, now_mono_ns: int) -> list[tuple[str, Raw, Quality]]:
        """Tags of this session not published for ``heartbeat_s``: (tag, last value,
        quality), marked as sent."""
        out = []
        for tag, last in self._last.items():
            if last.current and now_mono_ns - last.sent_ns >= self.heartbeat_ns:
                last.sent_ns = now_mono_ns
                out.append((tag, last.value, last.quality))
        return out

    def last(self, tag: str) -> tuple[Raw, Quality] | None:
        """The last published value and quality of ``tag``, if any (of any session)."""
        last = self._last.get(tag)
        return None if last is None else (last.value, last.quality)

    def forget(self) -> None:
        """A new session: no value is current (and heartbeated) until it is read again."""
        for last in self._last.values():
            last.current = False
