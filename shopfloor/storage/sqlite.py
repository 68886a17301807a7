"""Embedded store: SQLite in WAL mode, one durable transaction per write.

Schema (DESIGN.md "Store schema")::

    series(id, enterprise, site, area, line, device, tag)   -- unique path + tag
    samples(series_id, ts, value, value_str, quality, PRIMARY KEY(series_id, ts)) WITHOUT ROWID
    agent_seqs(agent, lo, hi, PRIMARY KEY(agent, lo)) WITHOUT ROWID  -- the seq ledger
    store_meta(key, value)            -- raw_from: the retention cutoff of the last pass
    write_marks(id, device, lo, hi)   -- the write log (``WriteLog``): one row per device
                                      -- and write, in the write's transaction

``INSERT OR REPLACE`` on the primary key makes a duplicate delivery a no-op. The
gateway (writer) and the server (reader) may be different processes; WAL lets
readers proceed while a write commits. Within a process each thread gets its own
connection. ``SqliteStore`` is a ``SampleWriter``, a ``SampleReader``, the ``SeqLedger``
(``write(rows, seqs, closed)``: samples and seqs in one transaction) and an
``ExpiringStore`` (``delete_expired``) and a ``WriteLog``.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from shopfloor.contract import DevicePath, DeviceSample

from .base import Series, sample_value, write_spans
from .ledger import Ranges, done, merge

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    enterprise TEXT NOT NULL, site TEXT NOT NULL, area TEXT NOT NULL,
    line TEXT NOT NULL, device TEXT NOT NULL, tag TEXT NOT NULL,
    UNIQUE (enterprise, site, area, line, device, tag)
);
CREATE TABLE IF NOT EXISTS samples (
    series_id INTEGER NOT NULL REFERENCES series(id),
    ts INTEGER NOT NULL,
    value REAL,
    value_str TEXT,
    quality TEXT NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS write_marks (  -- the write log the roll-ups follow
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,  -- enterprise/site/area/line/device
    lo INTEGER NOT NULL, hi INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS store_meta (  -- raw_from: retention deleted samples before it
    key TEXT PRIMARY KEY, value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_seqs (  -- stored seq ranges per edge agent (completeness.py)
    agent TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,
    PRIMARY KEY (agent, lo)
) WITHOUT ROWID;
"""

_PATH_COLS = ("enterprise", "site", "area", "line", "device")
_SeriesKey = tuple[str, str, str, str, str, str]


def _key(device: DevicePath, tag: str) -> _SeriesKey:
    return (device.enterprise, device.site, device.area, device.line, device.device, tag)


class SqliteStore:
    """Writer, reader, seq ledger and expiring store over one SQLite file."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        # one connection per thread; a thread's is closed once it has ended (a server's
        # worker threads come and go: each left two open files behind)
        self._conns: dict[threading.Thread, sqlite3.Connection] = {}
        self._lock = threading.Lock()
        self._ids: dict[_SeriesKey, int] = {}  # series id cache (ids never change)
        self._closed = False
        with self._conn() as conn:  # create the schema once, up front
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError(f"store {self.path} is closed")
            # autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL at every commit
            self._local.conn = conn
            with self._lock:
                ended = [t for t in self._conns if not t.is_alive()]
                for t in ended:
                    self._conns.pop(t).close()
                self._conns[threading.current_thread()] = conn
        return conn

    # --- writer -------------------------------------------------------------------

    def write(self, rows: list[DeviceSample], seqs: dict[str, list[int]] | None = None,
              closed: dict[str, Ranges] | None = None) -> dict[str, Ranges]:
        """Store rows and, in the same transaction, mark ``seqs`` (agent -> batch seqs) and
        ``closed`` (agent -> seq ranges given up) as done; returns those agents' ranges."""
        if not rows and not seqs and not closed:
            return {}
        conn = self._conn()
        new_ids: dict[_SeriesKey, int] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            data = []
            for device, sample in rows:
                key = _key(device, sample.tag)
                sid = self._ids.get(key) or new_ids.get(key)
                if sid is None:
                    sid = self._series_id(conn, key, create=True)
                    assert sid is not None
                    new_ids[key] = sid
                value, text = sample_value(sample)
                data.append((sid, sample.ts, value, text, str(sample.quality)))
            conn.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?)", data)
            conn.executemany("INSERT INTO write_marks (device, lo, hi) VALUES (?, ?, ?)",
                             [(d.asset_id, lo, hi) for d, (lo, hi) in write_spans(rows).items()])
            out = {agent: self._merge_ranges(conn, agent, add)
                   for agent, add in done(seqs, closed).items()}
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite ends it itself on some errors (a full disk)
                conn.execute("ROLLBACK")
            raise
        self._ids.update(new_ids)  # only ids that are committed
        return out

    def written_since(self, after: int) -> tuple[int, dict[str, tuple[int, int]]]:
        rows = self._conn().execute(
            "SELECT device, min(lo), max(hi), max(id) FROM write_marks WHERE id>? "
            "GROUP BY device", (after,)).fetchall()
        return (max((r[3] for r in rows), default=after),
                {dev: (lo, hi) for dev, lo, hi, _ in rows})

    def prune_write_log(self, upto: int) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM write_marks WHERE id<=?", (upto,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def delete_expired(self, cutoff_ns: int, max_rows: int) -> int:
        """Delete up to ``max_rows`` samples with ts < ``cutoff_ns`` in one transaction,
        oldest first within each series, never a series' newest sample (the value carried
        into any later window). Returns how many were deleted: fewer than ``max_rows`` means
        nothing expired is left. Seq ranges (``agent_seqs``) are not touched: a deleted
        sample was stored, so its seq must not look missing."""
        conn = self._conn()
        deleted = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            sids = [r[0] for r in conn.execute("SELECT id FROM series ORDER BY id")]
            for sid in sids:
                if deleted >= max_rows:
                    break
                newest = conn.execute("SELECT max(ts) FROM samples WHERE series_id=?",
                                      (sid,)).fetchone()[0]
                if newest is None:
                    continue
                bound = min(cutoff_ns, newest)  # delete ts < bound
                # the ts of the (budget+1)-th expired sample caps this series' share
                over = conn.execute(
                    "SELECT ts FROM samples WHERE series_id=? AND ts<? ORDER BY ts "
                    "LIMIT 1 OFFSET ?", (sid, bound, max_rows - deleted)).fetchone()
                if over is not None:
                    bound = over[0]
                deleted += conn.execute("DELETE FROM samples WHERE series_id=? AND ts<?",
                                        (sid, bound)).rowcount
            if deleted < max_rows:  # the pass is complete: nothing older is left
                conn.execute("INSERT INTO store_meta VALUES ('raw_from', ?) ON CONFLICT(key) "
                             "DO UPDATE SET value=max(value, excluded.value)", (cutoff_ns,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite ends it itself on some errors (a full disk)
                conn.execute("ROLLBACK")
            raise
        return deleted

    @staticmethod
    def _merge_ranges(conn: sqlite3.Connection, agent: str, add: Ranges) -> Ranges:
        old = conn.execute("SELECT lo, hi FROM agent_seqs WHERE agent=?", (agent,)).fetchall()
        new = merge([*old, *add])
        if new != sorted(old):
            conn.execute("DELETE FROM agent_seqs WHERE agent=?", (agent,))
            conn.executemany("INSERT INTO agent_seqs VALUES (?, ?, ?)",
                             [(agent, lo, hi) for lo, hi in new])
        return new

    def seq_ranges(self) -> dict[str, Ranges]:
        """Agent -> stored seq ranges (``SeqLedger``; see ledger.py)."""
        out: dict[str, Ranges] = {}
        for agent, lo, hi in self._conn().execute(
                "SELECT agent, lo, hi FROM agent_seqs ORDER BY agent, lo"):
            out.setdefault(agent, []).append((lo, hi))
        return out

    @staticmethod
    def _series_id(conn: sqlite3.Connection, key: _SeriesKey, *, create: bool) -> int | None:
        where = "enterprise=? AND site=? AND area=? AND line=? AND device=? AND tag=?"
        if create:
            conn.execute("INSERT OR IGNORE INTO series (enterprise, site, area, line, device, "
                         "tag) VALUES (?, ?, ?, ?, ?, ?)", key)
        row = conn.execute(f"SELECT id FROM series WHERE {where}", key).fetchone()  # noqa: S608
        return None if row is None else int(row[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.close()
        self._local = threading.local()

    # --- reader -------------------------------------------------------------------

    def _lookup(self, device: DevicePath, tag: str) -> int | None:
        key = _key(device, tag)
        sid = self._ids.get(key)
        if sid is None:
            sid = self._series_id(self._conn(), key, create=False)
            if sid is not None:
                self._ids[key] = sid
        return sid

    def read(self, device: DevicePath, tag: str, start_ns: int, end_ns: int, *,
             before: int = 1, after: int = 0, good_context: bool = False) -> Series:
        sid = self._lookup(device, tag)
        if sid is None:
            return Series.empty()
        conn = self._conn()
        cols = "SELECT ts, value, value_str, quality FROM samples WHERE series_id=?"
        good = " AND quality='good'" if good_context else ""
        # one read transaction, so the context and the window are consistent
        conn.execute("BEGIN")
        try:
            prev = conn.execute(f"{cols} AND ts<?{good} ORDER BY ts DESC LIMIT ?",  # noqa: S608
                                (sid, start_ns, before)).fetchall()[::-1] if before else []
            window = conn.execute(f"{cols} AND ts>=? AND ts<? ORDER BY ts",  # noqa: S608
                                  (sid, start_ns, end_ns)).fetchall() \
                if start_ns < end_ns else []
            nxt = conn.execute(f"{cols} AND ts>=?{good} ORDER BY ts LIMIT ?",  # noqa: S608
                               (sid, max(start_ns, end_ns), after)).fetchall() if after else []
        finally:
            conn.execute("COMMIT")
        return Series.from_rows(prev + window + nxt)

    def markers(self, tag: str, start_ns: int, end_ns: int) -> dict[str, Series]:
        found = self._conn().execute(
            "SELECT enterprise, site, area, line, device FROM series WHERE tag=?", (tag,))
        out = {}
        for path in found.fetchall():
            device = DevicePath(*path)
            got = self.read(device, tag, start_ns, end_ns)
            if len(got):
                out[device.asset_id] = got
        return out

    def count(self, device: DevicePath | None = None) -> int:
        conn = self._conn()
        if device is None:
            return int(conn.execute("SELECT count(*) FROM samples").fetchone()[0])
        where = " AND ".join(f"s.{c}=?" for c in _PATH_COLS)
        row = conn.execute(
            f"SELECT count(*) FROM samples JOIN series s ON s.id = samples.series_id "  # noqa: S608
            f"WHERE {where}", _key(device, "")[:5]).fetchone()
        return int(row[0])

    def last_seen(self) -> dict[str, int]:
        return self._seen("max")

    def first_seen(self) -> dict[str, int]:
        return self._seen("min")

    def _seen(self, which: str) -> dict[str, int]:
        # newest (oldest) ts per series through the primary key, then per device
        rows = self._conn().execute(
            f"SELECT enterprise, site, area, line, device, "  # noqa: S608
            f"(SELECT {which}(ts) FROM samples WHERE series_id = series.id) FROM series"
        ).fetchall()
        pick = max if which == "max" else min
        out: dict[str, int] = {}
        for *path, ts in rows:
            if ts is None:
                continue
            asset = "/".join(path)
            out[asset] = pick(out.get(asset, int(ts)), int(ts))
        return out

    def raw_from(self) -> int | None:
        row = self._conn().execute("SELECT value FROM store_meta WHERE key='raw_from'").fetchone()
        return None if row is None else int(row[0])

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
