"""The one way federation opens its SQLite files (the outbox, the cluster store): WAL,
autocommit (transactions explicit), shared between threads under the owner's lock."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_db(path: Path, schema: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(schema)
    return db
