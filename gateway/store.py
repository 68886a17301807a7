"""The sample store: read/write interface shared by gateway, server and tests, and its config.

Two backends implement it: the embedded SQLite store (``sqlite_store.py``) and
InfluxDB 1.x/2.x (``influx.py``). Writing the same sample twice (same series and
timestamp) is a no-op, so MQTT's at-least-once delivery becomes exactly-once here.

Config (YAML, under ``store:`` in the gateway and server configs)::

    store:
      embedded: {path: .shopfloor/store.db}
      influxdb: {version: 1, url: "http://127.0.0.1:8086", database: shopfloor}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import Field, SecretStr, model_validator

from shopfloor.config import Strict
from shopfloor.contract import DevicePath, Sample

Row = tuple[DevicePath, Sample]


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
    def read(self, device: DevicePath, tag: str, start_ns: int, end_ns: int) -> Series:
        """Samples with start_ns <= ts < end_ns, preceded by the latest sample with
        ts < start_ns if there is one (the value carried into the window)."""
        ...

    def count(self, device: DevicePath | None = None) -> int:
        """Number of stored samples (of one device, or all)."""
        ...

    def last_seen(self) -> dict[str, int]:
        """Asset id (``DevicePath.asset_id``) -> newest sample ts (ns)."""
        ...


@runtime_checkable
class SampleWriter(Protocol):
    def write(self, rows: list[Row]) -> None:
        """Store the rows; durable when this returns, raises on failure."""
        ...

    def close(self) -> None: ...


class PermanentWriteError(Exception):
    """The store refuses these rows for good (bad data, not an outage): retrying won't help."""


def sample_value(sample: Sample) -> tuple[float | None, str | None]:
    """The stored ``(value, value_str)`` of a sample: numbers and bools as float."""
    v = sample.value
    if isinstance(v, str):
        return None, v
    return float(v), None


# --- config ---------------------------------------------------------------------------


class EmbeddedStoreConfig(Strict):
    path: Path = Field(description="SQLite database file (created if missing)")
    retention_days: float | None = Field(
        None, gt=0, le=36_500,
        description="delete samples older than this (by source ts), keeping each series' "
                    "newest sample; unset keeps everything")
    retention_interval_s: float = Field(
        3600.0, gt=0, le=86_400, description="how often the gateway deletes expired samples")
    retention_batch_rows: int = Field(
        10_000, ge=1, le=1_000_000,
        description="samples deleted per transaction (the writer waits at most one batch)")

    @property
    def retention_ns(self) -> int | None:
        return None if self.retention_days is None else int(self.retention_days * 86_400e9)


class InfluxConfig(Strict):
    version: Literal[1, 2] = Field(
        description="1: InfluxDB 1.x /write; 2: v2 write API (InfluxDB 2.x/3.x/Cloud)")
    url: str = Field(pattern=r"^https?://\S+$", description="base URL, e.g. http://host:8086")
    database: str | None = Field(None, min_length=1, description="v1: database name")
    retention_policy: str | None = Field(None, min_length=1, description="v1: retention policy")
    username: str | None = Field(None, description="v1: user (basic auth)")
    password: SecretStr | None = Field(None, description="v1: password")
    token: SecretStr | None = Field(None, description="v2: API token")
    org: str | None = Field(None, min_length=1, description="v2: organisation")
    bucket: str | None = Field(None, min_length=1, description="v2: bucket (and /query db)")
    timeout_s: float = Field(10.0, gt=0, le=600, description="HTTP timeout per request")

    @model_validator(mode="after")
    def _per_version(self) -> InfluxConfig:
        if self.version == 1:
            if self.database is None:
                raise ValueError("version 1 needs `database`")
            if self.token is not None or self.bucket is not None or self.org is not None:
                raise ValueError("token/org/bucket are for version 2; use database "
                                 "(and username/password) with version 1")
        else:
            missing = [k for k in ("token", "org", "bucket") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"version 2 needs {', '.join(missing)}")
            if self.database is not None or self.retention_policy is not None:
                raise ValueError("database/retention_policy are for version 1; "
                                 "use bucket with version 2")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    @property
    def db(self) -> str:
        """The database name InfluxQL queries go to (v2: the bucket, via its DBRP mapping)."""
        name = self.database if self.version == 1 else self.bucket
        assert name is not None
        return name


class StoreConfig(Strict):
    embedded: EmbeddedStoreConfig | None = None
    influxdb: InfluxConfig | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> StoreConfig:
        if self.embedded is None and self.influxdb is None:
            raise ValueError("configure at least one store: `embedded` and/or `influxdb`")
        return self


def open_reader(cfg: StoreConfig) -> SampleReader:
    """The reader for this config: InfluxDB if configured, else the embedded store."""
    if cfg.influxdb is not None:
        from shopfloor.gateway.influx import InfluxReader

        return InfluxReader(cfg.influxdb)
    assert cfg.embedded is not None
    from shopfloor.gateway.sqlite_store import SqliteStore

    return SqliteStore(cfg.embedded.path)


def open_writers(cfg: StoreConfig) -> list[SampleWriter]:
    """One writer per configured store (embedded first)."""
    writers: list[SampleWriter] = []
    if cfg.embedded is not None:
        from shopfloor.gateway.sqlite_store import SqliteStore

        writers.append(SqliteStore(cfg.embedded.path))
    if cfg.influxdb is not None:
        from shopfloor.gateway.influx import open_influx_writer

        writers.append(open_influx_writer(cfg.influxdb))
    return writers
