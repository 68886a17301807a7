"""The sample store's interface: ``Series``, ``SampleReader``, ``SampleWriter`` (and
``ExpiringStore``, the store retention deletes from).

Two backends implement it: the embedded SQLite store (``sqlite.py``) and InfluxDB
1.x/2.x (``influx.py``). Writing the same sample twice (same series and timestamp) is
a no-op, so MQTT's at-least-once delivery becomes exactly-once here. What is written is
the contract's ``DeviceSample`` (``(DevicePath, Sample)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from shopfloor.contract import DevicePath, DeviceSample, Sample
from shopfloor.errors import ShopfloorError


@dataclass
class Series:
    """One tag's samples, ascending by ts."""

    ts: np.ndarray  # int64 ns since epoch, UTC
    value: np.ndarray  # float64; NaN for string samples
    text: list[str | None] = field(default_factory=list)  # the string value, else None
    good: np.ndarray | None = None  # bool: the sample's quality is good; None: all good

    def __len__(self) -> int:
        return len(self.ts)

    def good_values(self) -> np.ndarray:
        """``value`` with NaN where the quality is bad or uncertain: a counter value the
        device could not vouch for (e.g. a restarted server's placeholder) is skipped by
        the counter kernels, never read as a reset or an increase."""
        if self.good is None or self.good.all():
            return self.value
        return np.where(self.good, self.value, np.nan)

    @classmethod
    def empty(cls) -> Series:
        return cls(np.empty(0, np.int64), np.empty(0, np.float64), [])

    @classmethod
    def from_rows(cls, rows: list[tuple[int, float | None, str | None, str | None]]) -> Series:
        """From ``(ts, value, text, quality)`` tuples in ascending ts order, column by
        column in numpy (no Python loop over the rows); a None value becomes NaN."""
        a = np.fromiter(rows, dtype=_ROW, count=len(rows))
        return cls(a["ts"].copy(), a["value"].astype(np.float64), a["text"].tolist(),
                   good_quality(a["quality"]))


_ROW = np.dtype([("ts", np.int64), ("value", object), ("text", object), ("quality", object)])


def good_quality(quality: np.ndarray) -> np.ndarray:
    """bool per sample: its quality is good (None, from before qualities were kept, too)."""
    return (quality == "good") | (quality == None)  # noqa: E711 (elementwise)


@runtime_checkable
class SampleReader(Protocol):
    def read(self, device: DevicePath, tag: str, start_ns: int, end_ns: int, *,
             before: int = 1, after: int = 0, good_context: bool = False) -> Series:
        """Samples with start_ns <= ts < end_ns, preceded by the latest ``before`` samples
        with ts < start_ns (by default the one value carried into the window) and followed
        by the first ``after`` samples with ts >= end_ns; ``good_context``: those context
        samples are of good quality only (a counter's baseline and its next reading)."""
        ...

    def markers(self, tag: str, start_ns: int, end_ns: int) -> dict[str, Series]:
        """Every device's samples of a rare ``tag`` (a marker few devices have) with
        start_ns <= ts < end_ns, after the one in force at start_ns: asset id -> samples,
        in one or two queries, not one per device."""
        ...

    def count(self, device: DevicePath | None = None) -> int:
        """Number of stored samples (of one device, or all)."""
        ...

    def last_seen(self) -> dict[str, int]:
        """Asset id (``DevicePath.asset_id``) -> newest sample ts (ns)."""
        ...

    def first_seen(self) -> dict[str, int]:
        """Asset id -> oldest sample ts still stored (ns)."""
        ...

    def raw_from(self) -> int | None:
        """Samples are complete from this ts on (retention deleted older ones); None:
        nothing was deleted."""
        ...


@runtime_checkable
class SampleWriter(Protocol):
    def write(self, rows: list[DeviceSample]) -> None:
        """Store the rows; durable when this returns, raises on failure."""
        ...

    def close(self) -> None: ...


class ExpiringStore(Protocol):
    """A store that deletes old samples itself (the embedded store; InfluxDB has its own
    retention policies)."""

    def delete_expired(self, cutoff_ns: int, max_rows: int) -> int:
        """Delete up to ``max_rows`` samples with ts < ``cutoff_ns``, never a series' newest;
        fewer than ``max_rows`` deleted means nothing expired is left."""
        ...


class PermanentWriteError(ShopfloorError):
    """The store refuses these rows for good (bad data, not an outage): retrying won't help."""


def sample_value(sample: Sample) -> tuple[float | None, str | None]:
    """The stored ``(value, value_str)`` of a sample: numbers and bools as float."""
    v = sample.value
    if isinstance(v, str):
        return None, v
    return float(v), None


class WriteLog(Protocol):
    """Every ``write`` of a store also logs, per device, the span of sample times it wrote,
    in the same transaction (SQLite) or after its samples (InfluxDB), under an increasing
    cursor (SQLite: a row id; InfluxDB: the writer's clock). The roll-ups follow it to
    recompute what late or repeated data can change."""

    def written_since(self, after: int) -> tuple[int, dict[str, tuple[int, int]]]:
        """``(cursor, {asset id: (lowest, highest) ts})`` of the writes logged after
        ``after``; cursor: the last of them (``after`` if none)."""
        ...

    def prune_write_log(self, upto: int) -> None:
        """Forget the writes logged up to ``upto``."""
        ...


def write_spans(rows: list[DeviceSample]) -> dict[DevicePath, tuple[int, int]]:
    """Per device, the (min, max) sample ts of a write: what the write log records."""
    out: dict[DevicePath, tuple[int, int]] = {}
    for device, sample in rows:
        lo, hi = out.get(device, (sample.ts, sample.ts))
        out[device] = (min(lo, sample.ts), max(hi, sample.ts))
    return out
