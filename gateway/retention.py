"""Retention of the embedded store (``store.embedded.retention_days``), run by the gateway.

Every ``retention_interval_s`` a pass deletes the samples older than the retention by
source ts, in transactions of at most ``retention_batch_rows``: ``Retention.step()`` is
one of them per writer-loop turn while a pass is under way, so a pass over a large
backlog interleaves with the batch writes instead of blocking them. Each series keeps its
newest sample; the seq ledger is not touched (expired data is not a gap).
"""

from __future__ import annotations

import logging
import threading
import time

from shopfloor.storage import EmbeddedStoreConfig, ExpiringStore, StoreConfig, Stores

log = logging.getLogger(__name__)


class Retention:
    def __init__(self, store: ExpiringStore, cfg: EmbeddedStoreConfig, retention_ns: int):
        self._store = store
        self._cfg = cfg
        self._retention_ns = retention_ns
        self._due = 0.0  # monotonic time of the next pass
        self._cutoff: int | None = None  # set while a pass is under way
        self._lock = threading.Lock()  # the counters are read by other threads
        self._expired = 0
        self._passes = 0

    @classmethod
    def of(cls, stores: Stores, cfg: StoreConfig) -> Retention | None:
        """The retention of these stores, None if none is configured (or nothing expires)."""
        emb = cfg.embedded
        if emb is None or emb.retention_ns is None or stores.expiring is None:
            return None
        return cls(stores.expiring, emb, emb.retention_ns)

    def step(self) -> None:
        """Start a pass when one is due; delete one bounded batch while a pass is under way."""
        if self._cutoff is None:
            if time.monotonic() < self._due:
                return
            self._cutoff = time.time_ns() - self._retention_ns
        try:
            n = self._store.delete_expired(self._cutoff, self._cfg.retention_batch_rows)
        except Exception as exc:  # noqa: BLE001 - retried at the next pass
            log.warning("retention: deleting expired samples failed: %s", exc)
            n = 0
        done = n < self._cfg.retention_batch_rows
        if done:
            self._cutoff = None
            self._due = time.monotonic() + self._cfg.retention_interval_s
        with self._lock:
            self._expired += n
            self._passes += done

    def counts(self) -> dict[str, int]:
        """``GatewayStats`` fields: samples_expired, retention_passes."""
        with self._lock:
            return {"samples_expired": self._expired, "retention_passes": self._passes}
