"""The store config (``store:`` in the gateway and server configs) and opening the stores::

    store:
      embedded: {path: .shopfloor/store.db}
      influxdb: {version: 1, url: "http://127.0.0.1:8086", database: shopfloor}

``open_reader`` for the server; ``open_stores`` for the gateway: its writers, its seq
ledger (the embedded store when configured, else in memory) and the store retention
deletes from, decided here, where the configured backends are known.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, model_validator

from shopfloor.config import Strict

from .base import ExpiringStore, SampleReader, SampleWriter
from .ledger import MemoryLedger, SeqLedger

if TYPE_CHECKING:
    from .sqlite import SqliteStore

log = logging.getLogger(__name__)


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
    gzip_results: bool = Field(
        False, description="ask for gzipped query results: fewer bytes over a slow link, "
                           "CPU on both ends (off: a month of buckets read 1.3x faster on a LAN)")

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
        from shopfloor.storage.influx import InfluxReader

        return InfluxReader(cfg.influxdb)
    embedded = _open_embedded(cfg)
    assert embedded is not None  # StoreConfig has at least one store
    return embedded


@dataclass
class Stores:
    """Where the gateway writes a batch: every one of ``writers`` in turn, then ``ledger``
    (last, so a seq it records is in every store)."""

    writers: list[SampleWriter]
    ledger: SeqLedger
    expiring: ExpiringStore | None = None  # the store retention deletes from

    def names(self) -> str:
        return ", ".join(type(w).__name__ for w in [*self.writers, self.ledger])

    def close(self) -> None:
        for store in [*self.writers, self.ledger]:
            try:
                store.close()
            except Exception:
                log.exception("closing %s", type(store).__name__)


def open_stores(cfg: StoreConfig) -> Stores:
    """The embedded store, when configured, is the ledger: the seqs go in the transaction of
    its samples, the last write of a batch. Otherwise the ledger is kept in memory."""
    embedded, influx = _open_embedded(cfg), _open_influx(cfg)
    writers = [] if influx is None else [influx]
    if embedded is None:
        return Stores(writers, MemoryLedger())
    return Stores(writers, embedded, expiring=embedded)


def open_writers(cfg: StoreConfig) -> list[SampleWriter]:
    """One plain writer per configured store (embedded first)."""
    return [w for w in (_open_embedded(cfg), _open_influx(cfg)) if w is not None]


def _open_embedded(cfg: StoreConfig) -> SqliteStore | None:
    if cfg.embedded is None:
        return None
    from shopfloor.storage.sqlite import SqliteStore

    return SqliteStore(cfg.embedded.path)


def _open_influx(cfg: StoreConfig) -> SampleWriter | None:
    if cfg.influxdb is None:
        return None
    from shopfloor.storage.influx import open_influx_writer

    return open_influx_writer(cfg.influxdb)
