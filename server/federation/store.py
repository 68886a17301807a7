"""The cluster's database (SQLite): aggregates only, one row per (enterprise, period,
label), and a receipt per push. A push upserts by that key, so a resend overwrites and
never adds; an older revision than the one held is ignored. Nothing here can hold a
sample: a body is an ``Aggregate``, which forbids every field it does not name."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Literal

from .aggregates import Aggregate
from .db import open_db

Outcome = Literal["new", "replaced", "duplicate", "stale"]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS aggregates (
    enterprise TEXT NOT NULL, period TEXT NOT NULL, label TEXT NOT NULL,
    revision INTEGER NOT NULL, received INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (enterprise, period, label)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY, enterprise TEXT NOT NULL, period TEXT NOT NULL,
    label TEXT NOT NULL, revision INTEGER NOT NULL, received INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
"""


class ClusterStore:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_db(self.path, _SCHEMA)

    def put(self, agg: Aggregate) -> Outcome:
        key = (agg.enterprise, agg.period, agg.label)
        now = time.time_ns()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT revision FROM aggregates WHERE enterprise=? "
                                       "AND period=? AND label=?", key).fetchone()
                outcome: Outcome = ("new" if row is None else "stale" if row[0] > agg.revision
                                    else "duplicate" if row[0] == agg.revision else "replaced")
                if outcome != "stale":
                    self._db.execute("INSERT OR REPLACE INTO aggregates VALUES (?,?,?,?,?,?)",
                                     (*key, agg.revision, now, json.dumps(agg.body())))
                self._db.execute("INSERT INTO receipts (enterprise, period, label, revision, "
                                 "received, outcome) VALUES (?,?,?,?,?,?)",
                                 (*key, agg.revision, now, outcome))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return outcome

    def get(self, period: str, labels: list[str]) -> dict[str, dict[str, Aggregate]]:
        """enterprise -> label -> its aggregate, for the given labels of ``period``."""
        if not labels:
            return {}
        marks = ", ".join("?" * len(labels))
        with self._lock:
            rows = self._db.execute(
                f"SELECT enterprise, label, body FROM aggregates WHERE period=? "  # noqa: S608
                f"AND label IN ({marks}) ORDER BY enterprise, label", [period, *labels]
            ).fetchall()
        out: dict[str, dict[str, Aggregate]] = {}
        for ent, label, body in rows:
            out.setdefault(ent, {})[label] = Aggregate.model_validate_json(body)
        return out

    def enterprises(self) -> list[dict]:
        """Per enterprise: its name, how many aggregates, the latest received."""
        with self._lock:
            rows = self._db.execute(
                "SELECT enterprise, COUNT(*), MAX(received), MAX(label) FROM aggregates "
                "GROUP BY enterprise ORDER BY enterprise").fetchall()
        return [{"id": e, "aggregates": n, "last_received": r, "latest_label": lbl}
                for e, n, r, lbl in rows]

    def receipts(self) -> list[tuple[str, str, str, int, str]]:
        with self._lock:
            return self._db.execute("SELECT enterprise, period, label, revision, outcome "
                                    "FROM receipts ORDER BY id").fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()
