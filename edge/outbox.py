"""Durable outbox: every batch is on disk before it is published, until its PUBACK.

``Outbox(path, agent)``: ``append`` commits a batch under the agent's next sequence
number (persisted, strictly increasing across restarts; WAL, ``synchronous=FULL``);
``pending`` lists what is still unacknowledged, in seq order; ``ack`` marks a batch
acknowledged and ``flush_acks`` persists those marks in one transaction (a lost mark
only means a duplicate delivery, which the gateway ignores); ``newest_ts(device)`` is
the newest sample time of a device ever committed (kept in the batch's transaction: the
agent's downtime after a kill is marked after it). Acknowledged batches stay
in a replay window (the newest ``replay_window`` of them) so that ``replay`` can send
them again when a gateway reports a gap (a broker that died holding them); older ones
are deleted. An optional ``OutboxListener`` hears each commit and each first ack (the
metrics time publishes with it). Used from one thread (the agent's event loop).

A full volume (SQLite's "database or disk is full", ENOSPC) is not an error of the
caller's: ``append`` then releases a reserve file kept beside the outbox
(``RESERVE_BYTES``: room for SQLite to delete on a full disk), evicts the replay window
(room for new batches) and, if that is not enough, holds the batch in memory,
unpublished (only committed batches are published: nothing is acknowledged that was not
written), logs what is full, and writes the held batches first, in order, as soon as
there is room (on the next ``append`` or ``flush_acks``). At most ``HELD_MAX_SAMPLES``
are held; the oldest go beyond (counted as dropped). Acknowledgement marks that cannot
be written wait in memory likewise.
"""

from __future__ import annotations

import collections
import errno
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shopfloor.contract import encode_samples

log = logging.getLogger(__name__)
RESERVE_BYTES = 1 << 20  # released when the volume is full, taken again when it is not
HELD_MAX_SAMPLES = 500_000  # held in memory while the volume is full (~100 MB at most)
FULL_LOG_INTERVAL_S = 30.0  # how often a full volume is logged again while it lasts


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the volume (or the database's file) is out of space."""
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    n_samples INTEGER NOT NULL,
    acked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    device: str
    topic: str
    payload: bytes
    n_samples: int


class OutboxListener(Protocol):
    def committed(self, seq: int) -> None:
        """Batch ``seq`` is on disk (``append`` is about to return)."""

    def acknowledged(self, seq: int) -> None:
        """Batch ``seq`` has its PUBACK (once per batch)."""


class Outbox:
    def __init__(self, path: Path | str, agent: str, max_bytes: int | None = None,
                 replay_window: int = 0, listener: OutboxListener | None = None):
        self.path = Path(path)
        self.listener = listener
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.agent = agent
        self.max_bytes = max_bytes
        self.replay_window = replay_window  # acknowledged batches kept for replay
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        cols = [r[1] for r in self.db.execute("PRAGMA table_info(batches)")]
        if "acked" not in cols:  # an outbox from before the replay window
            self.db.execute("ALTER TABLE batches ADD COLUMN acked INTEGER NOT NULL DEFAULT 0")
        self.db.execute("DROP INDEX IF EXISTS batches_device")
        self.db.execute("CREATE INDEX IF NOT EXISTS batches_pending ON batches "
                        "(device, acked, seq)")
        row = self.db.execute("SELECT value FROM state WHERE key='last_seq'").fetchone()
        top = self.db.execute("SELECT MAX(seq) FROM batches").fetchone()[0]
        self.last_seq = max(row[0] if row else 0, top or 0)
        self.bytes = self.db.execute(
            "SELECT COALESCE(SUM(LENGTH(payload)),0) FROM batches").fetchone()[0]
        samples = self.db.execute(
            "SELECT COALESCE(SUM(n_samples),0) FROM batches WHERE acked=0").fetchone()[0]
        self._acked: dict[int, int] = {}  # seq -> n_samples, awaiting flush_acks
        self.enqueued = 0  # samples appended since open
        self.acknowledged = 0  # samples acknowledged since open
        self.dropped = 0  # samples dropped over max_bytes since open
        self._pending_samples = samples
        self._held: collections.deque[tuple[str, str, list[dict[str, Any]]]] = \
            collections.deque()  # batches not yet written: the volume was full
        self.held_samples = 0
        self._full_logged = 0.0  # monotonic time the full volume was last logged; 0: not full
        self.reserve = self.path.with_name(self.path.name + ".reserve")
        self._take_reserve()
        if samples:
            log.info("outbox %s: %d samples from a previous run still to publish",
                     self.path, samples)

    def append(self, device: str, topic: str, samples: list[dict[str, Any]]) -> Entry | None:
        """Commit one batch (fsync'd) under the next seq; publish only after this returns.
        None if the volume is full: the batch is held (see the module's docstring)."""
        self.enqueued += len(samples)
        self._pending_samples += len(samples)
        self._held.append((device, topic, samples))
        self.held_samples += len(samples)
        return self._write_held()

    def _write_held(self) -> Entry | None:
        """Commit the held batches in order; the last one committed, None if any is left."""
        entry = None
        while self._held:
            device, topic, samples = self._held[0]
            try:
                entry = self._commit(device, topic, samples)
            except sqlite3.OperationalError as exc:
                if not disk_full(exc):
                    raise
                if self._volume_full(exc):
                    continue  # room was made: try again
                return None
            self._held.popleft()
            self.held_samples -= len(samples)
        if self._full_logged:
            self._full_logged = 0.0
            self._take_reserve()
            log.warning("outbox %s: written again; every held batch is committed (last "
                        "seq %d)", self.path, self.last_seq)
        return entry

    def _take_reserve(self) -> None:
        if self.reserve.exists():
            return
        try:
            with open(self.reserve, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
                f.flush()
        except OSError as exc:
            self.reserve.unlink(missing_ok=True)
            if not disk_full(exc):
                raise

    def _commit(self, device: str, topic: str, samples: list[dict[str, Any]]) -> Entry:
        seq = self.last_seq + 1
        payload = encode_samples(self.agent, seq, samples)
        with self.db:  # BEGIN ... COMMIT
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT INTO batches VALUES (?,?,?,?,?,0)",
                            (seq, device, topic, payload, len(samples)))
            self.db.execute("INSERT INTO state VALUES ('last_seq', ?) "
                            "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (seq,))
            self.db.execute("INSERT INTO state VALUES (?, ?) ON CONFLICT(key) "
                            "DO UPDATE SET value=MAX(value, excluded.value)",
                            (f"newest_ts:{device}", max(s["ts"] for s in samples)))
        self.last_seq = seq
        self.bytes += len(payload)
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            self._drop_oldest()
        if self.listener is not None:
            self.listener.committed(seq)
        return Entry(seq, device, topic, payload, len(samples))

    def _volume_full(self, exc: BaseException) -> bool:
        """Make room (the reserve goes, then the replay window), or bound what is held;
        say what is full. True if room was made."""
        released = self.reserve.stat().st_size if self.reserve.exists() else 0
        self.reserve.unlink(missing_ok=True)
        evicted = 0
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                freed = self.db.execute("SELECT COALESCE(SUM(LENGTH(payload)),0), COUNT(*) "
                                        "FROM batches WHERE acked=1").fetchone()
                self.db.execute("DELETE FROM batches WHERE acked=1")
            self.bytes -= freed[0]
            evicted = freed[1]
        except sqlite3.OperationalError as again:
            if not disk_full(again):
                raise
        now = time.monotonic()
        if released or evicted:
            self._full_logged = now
            log.error("outbox %s: the volume is full (%s): released its reserve (%d bytes) "
                      "and evicted the replay window (%d acknowledged batches) to go on; "
                      "batches are held in memory once that room is used", self.path, exc,
                      released, evicted)
            return True
        while self.held_samples > HELD_MAX_SAMPLES and len(self._held) > 1:
            _, _, samples = self._held.popleft()
            self.held_samples -= len(samples)
            self.dropped += len(samples)
            self._pending_samples -= len(samples)
        if not self._full_logged or now - self._full_logged >= FULL_LOG_INTERVAL_S:
            self._full_logged = now
            log.error("outbox %s: the volume is full (%s): %d samples held in memory, not "
                      "published until written; %d dropped so far", self.path, exc,
                      self.held_samples, self.dropped)
        return False

    def newest_ts(self, device: str) -> int | None:
        """The newest sample time (ns) of ``device`` in any batch committed, None if none."""
        row = self.db.execute("SELECT value FROM state WHERE key=?",
                              (f"newest_ts:{device}",)).fetchone()
        return row[0] if row else None

    def pending(self, device: str, after_seq: int = 0, limit: int = 1000) -> list[Entry]:
        """Unacknowledged batches of ``device`` with seq > ``after_seq``, oldest first."""
        rows = self.db.execute(
            "SELECT seq, device, topic, payload, n_samples FROM batches "
            "WHERE device=? AND acked=0 AND seq>? ORDER BY seq LIMIT ?",
            (device, after_seq, limit))
        return [Entry(*r) for r in rows if r[0] not in self._acked]

    def replay(self, first: int, last: int, limit: int = 1000) -> list[Entry]:
        """Acknowledged batches with ``first <= seq <= last`` still in the replay window.

        Unacknowledged ones are not listed: they are on their way anyway.
        """
        rows = self.db.execute(
            "SELECT seq, device, topic, payload, n_samples FROM batches "
            "WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?", (first, last, limit))
        return [Entry(*r) for r in rows if r[0] in self._acked or self._is_acked(r[0])]

    def _is_acked(self, seq: int) -> bool:
        row = self.db.execute("SELECT acked FROM batches WHERE seq=?", (seq,)).fetchone()
        return bool(row and row[0])

    def ack(self, seq: int, n_samples: int) -> None:
        if seq not in self._acked:
            self._acked[seq] = n_samples
            self.acknowledged += n_samples
            self._pending_samples -= n_samples
            if self.listener is not None:
                self.listener.acknowledged(seq)

    def flush_acks(self) -> int:
        """Mark acknowledged batches, delete those beyond the replay window; returns how many
        were marked."""
        if self._held:
            self._write_held()
        if not self._acked:
            return 0
        try:
            return self._mark_acked()
        except sqlite3.OperationalError as exc:
            if not disk_full(exc):
                raise
            self._volume_full(exc)  # the marks wait in memory (a lost one is a duplicate)
            return 0

    def _mark_acked(self) -> int:
        seqs = list(self._acked)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for i in range(0, len(seqs), 500):
                chunk = seqs[i:i + 500]
                marks = ",".join("?" * len(chunk))
                self.db.execute(f"UPDATE batches SET acked=1 WHERE seq IN ({marks})",  # noqa: S608
                                chunk)
            # the newest `replay_window` acknowledged batches stay; older ones go
            cut = self.db.execute(
                "SELECT seq FROM batches WHERE acked=1 ORDER BY seq DESC LIMIT 1 OFFSET ?",
                (self.replay_window,)).fetchone()
            if cut is not None:
                self.bytes -= self.db.execute(
                    "SELECT COALESCE(SUM(LENGTH(payload)),0) FROM batches "
                    "WHERE acked=1 AND seq<=?", (cut[0],)).fetchone()[0]
                self.db.execute("DELETE FROM batches WHERE acked=1 AND seq<=?", (cut[0],))
        self._acked.clear()
        return len(seqs)

    def _drop_oldest(self) -> None:
        assert self.max_bytes is not None
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            while self.bytes > self.max_bytes:
                row = self.db.execute(  # the replay window goes first
                    "SELECT seq, LENGTH(payload), n_samples, acked FROM batches "
                    "ORDER BY acked DESC, seq LIMIT 1").fetchone()
                if row is None or row[0] == self.last_seq:
                    break  # never drop the batch just appended
                self.db.execute("DELETE FROM batches WHERE seq=?", (row[0],))
                self.bytes -= row[1]
                if row[3]:
                    continue
                if row[0] not in self._acked:
                    self.dropped += row[2]
                    self._pending_samples -= row[2]
                else:
                    del self._acked[row[0]]
        log.warning("outbox over %d bytes: dropped oldest batches (%d samples dropped so far)",
                    self.max_bytes, self.dropped)

    @property
    def depth(self) -> int:
        """Samples not yet acknowledged (held ones included)."""
        return self._pending_samples

    def close(self) -> None:
        self.flush_acks()
        if self.held_samples:
            log.error("outbox %s: closing with %d samples still held in memory (the volume "
                      "is full): they are lost", self.path, self.held_samples)
        self.db.close()
