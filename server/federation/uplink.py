"""The enterprise's side of the link: a durable outbox (SQLite) and the thread that fills
it with changed aggregates and pushes it to the cluster server, outbound only.

Each round recomputes the periods of the last ``recent_days`` (the first round after a
start: ``backfill_days``), queues those whose figures changed since last delivered (a new
revision), then POSTs the queue oldest first. A row leaves the queue only when the
cluster has answered 2xx; an outage or a refusal leaves it for the next round, so a
restart or a cut uplink loses nothing, and the cluster's upsert by (enterprise, period,
label) makes a resend harmless. No token is ever logged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from shopfloor.times import iso

from .aggregates import Aggregate
from .config import FederationConfig
from .db import open_db

log = logging.getLogger("shopfloor.federation")
PATH = "/api/v1/federation/aggregates"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    period TEXT NOT NULL, label TEXT NOT NULL, revision INTEGER NOT NULL,
    content TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (period, label)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivered (
    period TEXT NOT NULL, label TEXT NOT NULL, revision INTEGER NOT NULL,
    content TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (period, label)
) WITHOUT ROWID;
"""


class Outbox:
    """Aggregates waiting for the cluster's 2xx, at most one per (period, label): a newer
    revision replaces a waiting one."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_db(self.path, _SCHEMA)

    def put(self, agg: Aggregate) -> bool:
        """Queue ``agg`` unless its figures are those delivered or waiting; True if queued."""
        key, content = (agg.period, agg.label), agg.content_key()
        with self._lock:
            for table in ("pending", "delivered"):
                row = self._db.execute(f"SELECT content FROM {table} "  # noqa: S608
                                       "WHERE period=? AND label=?", key).fetchone()
                if row is not None and row[0] == content:
                    return False
            self._db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?)",
                             (*key, agg.revision, content, json.dumps(agg.body())))
            return True

    def waiting(self) -> list[tuple[str, str, int, dict]]:
        """(period, label, revision, body), oldest period first."""
        with self._lock:
            rows = self._db.execute("SELECT period, label, revision, body FROM pending "
                                    "ORDER BY label, period").fetchall()
        return [(p, lbl, r, json.loads(b)) for p, lbl, r, b in rows]

    def delivered(self, period: str, label: str, revision: int) -> None:
        """The cluster has it: move it out of the queue (unless a newer one is waiting)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT content FROM pending WHERE period=? AND label=? "
                                   "AND revision=?", (period, label, revision)).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM pending WHERE period=? AND label=?",
                                 (period, label))
                self._db.execute("INSERT OR REPLACE INTO delivered VALUES (?, ?, ?, ?, ?)",
                                 (period, label, revision, row[0], time.time_ns()))
            self._db.execute("COMMIT")

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {t: self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608
                    for t in ("pending", "delivered")}

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class Status:
    """What the enterprise sees of its uplink (``GET /api/v1/federation``)."""

    rounds: int = 0
    pushed: int = 0
    last_round: int | None = None
    last_delivery: int | None = None
    last_error: str | None = None

    def to_json(self) -> dict:
        return {"rounds": self.rounds, "pushed": self.pushed,
                "last_round": iso(self.last_round) if self.last_round else None,
                "last_delivery": iso(self.last_delivery) if self.last_delivery else None,
                "last_error": self.last_error}


Compute = Callable[[int], list[Aggregate]]  # days back -> the aggregates of those periods


class Uplink:
    """Rounds of compute-then-push, every ``interval_s``, in a thread of its own."""

    def __init__(self, cfg: FederationConfig, outbox: Outbox, compute: Compute, *,
                 transport: httpx.BaseTransport | None = None):
        self.cfg, self.outbox, self.compute = cfg, outbox, compute
        self.status = Status()
        self._down = False
        self._client = httpx.Client(base_url=cfg.cluster_url.rstrip("/"),
                                    timeout=cfg.timeout_s, verify=cfg.verify_tls,
                                    transport=transport)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def round(self) -> int:
        """One round; the number of aggregates the cluster accepted."""
        days = self.cfg.backfill_days if self.status.rounds == 0 else self.cfg.recent_days
        try:
            queued = sum(self.outbox.put(a) for a in self.compute(days))
        except Exception:  # a bad round must not end the uplink
            log.exception("computing the aggregates failed")
            queued = 0
        self.status.rounds += 1
        self.status.last_round = time.time_ns()
        log.debug("%d aggregates queued", queued)
        return self.push()

    def push(self) -> int:
        """POST the queue oldest first; stop at an outage, a refused credential or a server
        error (the rest waits); an aggregate the cluster rejects (another 4xx) waits too,
        but the next ones go on."""
        sent, self.status.last_error = 0, None
        for period, label, revision, body in self.outbox.waiting():
            err, stop = self._post(body)
            if err is not None:
                self.status.last_error = err
                if stop:
                    break
                continue
            self.outbox.delivered(period, label, revision)
            sent += 1
            self.status.last_delivery = time.time_ns()
        self.status.pushed += sent
        return sent

    def _post(self, body: dict) -> tuple[str | None, bool]:
        """(None, _) when accepted, else what went wrong (without the credential) and
        whether to stop this round."""
        headers = {"Authorization": f"Bearer {self.cfg.token.get_secret_value()}"}
        try:
            r = self._client.post(PATH, json=body, headers=headers)
        except httpx.HTTPError as exc:
            err = f"cluster unreachable ({type(exc).__name__})"
            if not self._down:  # once per outage, not every round
                log.warning("%s; aggregates wait in the outbox (%d now)", err,
                            self.outbox.counts()["pending"])
            self._down = True
            return err, True
        if self._down:
            log.info("cluster reachable again; sending the outbox")
            self._down = False
        if r.status_code in (401, 403):
            err = f"cluster refused enterprise {self.cfg.enterprise!r}'s credential " \
                  f"(HTTP {r.status_code})"
            log.error("%s; check federation.token", err)
            return err, True
        if r.status_code >= 300:
            err = f"cluster answered HTTP {r.status_code} to {body.get('label')}: " \
                  f"{r.text[:200]}"
            log.warning("%s", err)
            return err, r.status_code >= 500
        return None, False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="federation-uplink",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            self.round()
            self._stop.wait(max(0.0, self.cfg.interval_s - (time.monotonic() - t)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.cfg.timeout_s + 5)
        self._client.close()
        self.outbox.close()
