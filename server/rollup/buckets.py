"""Where roll-up buckets live: one interface (``BucketStore``), two backends.

A bucket is one machine's ``Quantities`` over ``[start, start + res)`` for a fixed
resolution ``res`` (``RESOLUTIONS``: minute, hour, day, in UTC), under one definition
(``Definition.fingerprint``: buckets of another config are never read). Beside the buckets,
per machine: the fingerprint of its own parameters (counter width, cycle times) and
``settled``, the time before which its buckets are complete; per maintainer: how far it
has followed the store's write log. Every write is an idempotent upsert.

- ``SqliteBuckets``: tables beside the samples in the embedded store's file;
- ``InfluxBuckets`` (``influx_buckets.py``): measurements beside ``samples``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from .quantities import FLOAT_FIELDS, INT_FIELDS, Quantities

MINUTE, HOUR, DAY = 60 * 10**9, 3600 * 10**9, 86400 * 10**9
RESOLUTIONS = (DAY, HOUR, MINUTE)  # coarsest first
GroupBy = Literal["device", "start"]


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DeviceState:
    fingerprint: str  # of the machine's own parameters
    built_from: int  # its buckets exist from here (ns) ...
    settled: int  # ... up to here (complete)


@dataclass(frozen=True)
class MaintainerState:
    name: str
    cursor: int  # the write log is followed up to here
    heartbeat: int  # wall clock ns of its last round


class BucketStore(Protocol):
    def put(self, device: str, res: int, starts: np.ndarray, q: Quantities) -> None:
        """Upsert buckets ``starts[i]`` of ``device`` at resolution ``res``."""
        ...

    def sums(self, res: int, start: int, end: int, devices: list[str] | None,
             by: GroupBy) -> dict[str | int, Quantities]:
        """Buckets of resolution ``res`` with start in [start, end), summed per device (or
        per bucket start over the devices); ``devices=None``: every device."""
        ...

    def devices(self) -> dict[str, DeviceState]: ...

    def set_device(self, device: str, state: DeviceState) -> None: ...

    def maintainers(self) -> list[MaintainerState]: ...

    def set_maintainer(self, state: MaintainerState) -> None: ...

    def prune(self, res: int, before: int) -> None:
        """Delete buckets of resolution ``res`` that start before ``before``."""
        ...

    def flush(self) -> None:
        """Write what is buffered (every read and ``set_maintainer`` do it first)."""
        ...

    def close(self) -> None: ...


_COLS = (*INT_FIELDS, *FLOAT_FIELDS)
_FLUSH_ROWS = 50_000  # buffered rows written at the latest at this many
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS rollup_buckets (
    def TEXT NOT NULL, res INTEGER NOT NULL, device TEXT NOT NULL, start INTEGER NOT NULL,
    {", ".join(f"{c} INTEGER NOT NULL" for c in INT_FIELDS)},
    {", ".join(f"{c} REAL NOT NULL" for c in FLOAT_FIELDS)},
    PRIMARY KEY (def, res, device, start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_devices (
    def TEXT NOT NULL, device TEXT NOT NULL, fingerprint TEXT NOT NULL,
    built_from INTEGER NOT NULL, settled INTEGER NOT NULL,
    PRIMARY KEY (def, device)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_maintainers (
    def TEXT NOT NULL, name TEXT NOT NULL, cursor INTEGER NOT NULL, heartbeat INTEGER NOT NULL,
    PRIMARY KEY (def, name)
) WITHOUT ROWID;
"""
# sums: the quantities add up, but state_seen is a flag (Quantities.total)
_SUMS = ", ".join(f"MAX({c})" if c == "state_seen" else f"SUM({c})" for c in _COLS)


class SqliteBuckets:
    """``BucketStore`` in the embedded store's SQLite file (WAL; one connection per
    thread), beside the samples.

    Writes are buffered and go out in one transaction before any read and with the
    maintainer's cursor: a round is a few transactions, not one per machine and bucket
    size, each of which made the gateway's writer wait for the file's one write lock
    (and sleep in SQLite's busy handler): 24 % of ingest throughput in
    benchmarks/ingest.py. A round's states commit with (or after) their buckets."""

    def __init__(self, path: Path | str, definition: str, *, busy_timeout_s: float = 30.0):
        self.path, self.definition = Path(path), definition
        self._def = short_hash(definition)
        self._timeout = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._pending: list[tuple[str, list[tuple]]] = []  # (statement, rows), in order
        self._pending_rows = 0
        self._write_lock = threading.Lock()  # the maintainer's thread and the requests'
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _write(self, sql: str, rows: list[tuple]) -> None:
        with self._write_lock:
            self._pending.append((sql, rows))
            self._pending_rows += len(rows)
            full = self._pending_rows >= _FLUSH_ROWS
        if full:
            self.flush()

    def flush(self) -> None:
        with self._write_lock:  # held while writing: nothing overtakes what is pending
            if not self._pending:
                return
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in self._pending:
                    conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise  # kept: the next flush tries again
            self._pending.clear()
            self._pending_rows = 0

    def put(self, device: str, res: int, starts: np.ndarray, q: Quantities) -> None:
        if len(starts) == 0:
            return
        marks = ", ".join("?" * (4 + len(_COLS)))
        rows = [(self._def, res, device, int(s), *i, *f) for s, i, f in
                zip(starts.tolist(), q.ints.tolist(), q.floats.tolist(), strict=True)]
        self._write(f"INSERT OR REPLACE INTO rollup_buckets VALUES ({marks})", rows)  # noqa: S608

    def sums(self, res: int, start: int, end: int, devices: list[str] | None,
             by: GroupBy) -> dict[str | int, Quantities]:
        key = "device" if by == "device" else "start"
        where, args = "def=? AND res=? AND start>=? AND start<?", [self._def, res, start, end]
        if devices is not None:
            where += f" AND device IN ({', '.join('?' * len(devices))})"
            args += devices
        self.flush()  # a reader sees this process's writes
        rows = self._conn().execute(
            f"SELECT {key}, {_SUMS} FROM rollup_buckets WHERE {where} GROUP BY {key}",  # noqa: S608
            args).fetchall()
        n = len(INT_FIELDS)
        return {r[0]: Quantities(np.array([r[1:1 + n]], np.int64),
                                 np.array([r[1 + n:]], np.float64)) for r in rows}

    def devices(self) -> dict[str, DeviceState]:
        self.flush()
        rows = self._conn().execute(
            "SELECT device, fingerprint, built_from, settled FROM rollup_devices WHERE def=?",
            (self._def,))
        return {d: DeviceState(fp, b, s) for d, fp, b, s in rows}

    def set_device(self, device: str, state: DeviceState) -> None:
        self._write("INSERT OR REPLACE INTO rollup_devices VALUES (?, ?, ?, ?, ?)",
                    [(self._def, device, state.fingerprint, state.built_from, state.settled)])

    def maintainers(self) -> list[MaintainerState]:
        self.flush()
        rows = self._conn().execute(
            "SELECT name, cursor, heartbeat FROM rollup_maintainers WHERE def=?", (self._def,))
        return [MaintainerState(*r) for r in rows]

    def set_maintainer(self, state: MaintainerState) -> None:
        """With everything buffered, in one transaction: the cursor vouches for it."""
        self._write("INSERT OR REPLACE INTO rollup_maintainers VALUES (?, ?, ?, ?)",
                    [(self._def, state.name, state.cursor, state.heartbeat)])
        self.flush()

    def prune(self, res: int, before: int) -> None:
        self._write("DELETE FROM rollup_buckets WHERE def=? AND res=? AND start<?",
                    [(self._def, res, before)])

    def close(self) -> None:
        self.flush()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            c.close()
        self._local = threading.local()
