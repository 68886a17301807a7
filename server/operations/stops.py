"""Stops and what people say about them.

A stop is a state episode in IDLE, DOWN or SETUP (availability loss) from the state
series the metrics read (``timeline.intervals``: staleness and the shift calendar laid
over), named by its machine and start (ns). An episode that began before a window is
found whole if it began within ``stop_lookback_s``.

The machine may give a reason (signal ``stop_reason``): the last reason code sampled
within the stop, else the one in force when it began ("" and ``NO_REASON`` are none).
People set or change a reason, add a comment, or split a stop at an instant: a stop is
one or more segments (``StopSegment`` rows by their start), each with the reason people
gave it, else the machine's. Every change is kept in ``StopAudit`` (who, when, old,
new value).
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shopfloor.contract import NO_REASON, SIGNAL_STATE, SIGNAL_STOP_REASON
from shopfloor.server.config import OeeConfig
from shopfloor.server.oee import MetricsQuery
from shopfloor.server.operations.db import Database
from shopfloor.server.operations.reasons import reasons_of
from shopfloor.server.operations.schema import StopAudit, StopSegment
from shopfloor.server.registry import Asset
from shopfloor.server.roles import Principal
from shopfloor.server.rollup.quantities import state_codes
from shopfloor.server.timeline import STATE_NAMES, intervals
from shopfloor.storage import SampleReader
from shopfloor.times import NS, iso

STOP_STATES = ("IDLE", "DOWN", "SETUP")
MAX_COMMENT = 2000


class StopError(ValueError):
    """A change that cannot be made (no such stop or reason, a split outside the stop)."""


@dataclass(frozen=True)
class Stop:
    machine: str
    state: str
    start: int
    end: int
    machine_reason: str | None


@dataclass(frozen=True)
class Segment:
    """A stop's part from ``start`` to ``end``, with the reason it has and from whom."""

    stop: Stop
    start: int
    end: int
    reason: str | None
    source: str | None  # "person", "machine" or None (unclassified)
    comment: str | None
    updated_by: str | None

    def overlap(self, t0: int, t1: int) -> int:
        return max(0, min(self.end, t1) - max(self.start, t0))

    def to_json(self) -> dict[str, Any]:
        return {"machine": self.stop.machine, "state": self.stop.state,
                "stop_start": str(self.stop.start), "segment_start": str(self.start),
                "start": iso(self.start), "end": iso(self.end),
                "duration_s": (self.end - self.start) / NS,
                "machine_reason": self.stop.machine_reason, "reason": self.reason,
                "source": self.source, "comment": self.comment,
                "updated_by": self.updated_by}


def _given(value: str | None) -> bool:
    return bool(value) and value != NO_REASON


def machine_reason(ts: list[int], text: list[str | None], start: int, end: int
                   ) -> str | None:
    """The reason the machine gave the stop [start, end): the last one sampled in it,
    else the one in force at its start."""
    i, j = bisect.bisect_left(ts, start), bisect.bisect_left(ts, end)
    for k in range(j - 1, i - 1, -1):
        if _given(text[k]):
            return text[k]
    if i > 0 and _given(text[i - 1]):
        return text[i - 1]
    return None


def stops_of(reader: SampleReader, oee: OeeConfig, lookback_ns: int, machine: Asset,
             t0: int, t1: int) -> list[Stop]:
    """The machine's stops overlapping [t0, t1), each whole (up to t1)."""
    assert machine.device is not None
    q = MetricsQuery.of(oee, t0 - lookback_ns, t1)
    s = reader.read(machine.device, SIGNAL_STATE, q.t0, q.t1)
    eps = intervals(s.ts, state_codes(s), q.t0, q.t1, q.stale_ns, q.steps)
    found = [(b, e, STATE_NAMES[c]) for b, e, c in eps
             if STATE_NAMES[c] in STOP_STATES and e > t0]
    if not found:
        return []
    r = reader.read(machine.device, SIGNAL_STOP_REASON, q.t0, q.t1)
    ts, text = r.ts.tolist(), list(r.text)
    return [Stop(machine.id, state, b, e, machine_reason(ts, text, b, e))
            for b, e, state in found]


def segments_of(s: Session, stops: list[Stop]) -> list[Segment]:
    """Each stop's segments, with what people said about them."""
    if not stops:
        return []
    rows: dict[tuple[str, int], dict[int, StopSegment]] = {}
    machines = sorted({st.machine for st in stops})
    lo, hi = min(st.start for st in stops), max(st.start for st in stops)
    for row in s.scalars(select(StopSegment).where(
            StopSegment.machine.in_(machines), StopSegment.stop_start >= lo,
            StopSegment.stop_start <= hi)):
        rows.setdefault((row.machine, row.stop_start), {})[row.segment_start] = row
    out = []
    for st in stops:
        mine = rows.get((st.machine, st.start), {})
        starts = sorted({st.start} | {t for t in mine if st.start < t < st.end})
        for a, b in zip(starts, [*starts[1:], st.end], strict=True):
            row = mine.get(a)
            said = row.reason if row is not None else None
            reason = said or st.machine_reason
            source = "person" if said else "machine" if st.machine_reason else None
            out.append(Segment(st, a, b, reason, source, row.comment if row else None,
                               row.updated_by if row else None))
    return out


class StopBook:
    """Reads stops and records what people say about them (``set_reason``,
    ``set_comment``, ``split``), each change with its audit row, in one transaction."""

    def __init__(self, db: Database, reader: SampleReader, oee: OeeConfig, lookback_s: float):
        self.db, self.reader, self.oee = db, reader, oee
        self.lookback_ns = round(lookback_s * NS)

    def segments(self, equipment: list[Asset], t0: int, t1: int) -> list[Segment]:
        stops = [st for a in equipment
                 for st in stops_of(self.reader, self.oee, self.lookback_ns, a, t0, t1)]
        with self.db.session() as s:
            return segments_of(s, stops)

    def _stop(self, machine: Asset, stop_start: int) -> Stop:
        end = min(time.time_ns(), stop_start + self.lookback_ns)
        for st in stops_of(self.reader, self.oee, self.lookback_ns, machine, stop_start,
                           max(end, stop_start + 1)):
            if st.start == stop_start:
                return st
        raise StopError(f"{machine.id} has no stop starting at {iso(stop_start)}")

    def _segment(self, s: Session, stop: Stop, segment_start: int | None) -> Segment:
        segs = segments_of(s, [stop])
        at = stop.start if segment_start is None else segment_start
        for seg in segs:
            if seg.start == at:
                return seg
        raise StopError(f"the stop has no segment starting at {iso(at)}")

    def _write(self, who: Principal, machine: Asset, stop_start: int,
               segment_start: int | None, action: str, value: str | None) -> Segment:
        stop = self._stop(machine, stop_start)
        for attempt in (1, 2):  # a concurrent first write of the same segment: once more
            try:
                with self.db.session() as s:
                    seg = self._segment(s, stop, segment_start)
                    if action == "reason" and value is not None and value not in reasons_of(
                            s, machine.id.split("/", 1)[0]):
                        raise StopError(f"{value!r} is not a reason code of the enterprise")
                    row = self._row(s, stop, seg.start, who)
                    old = row.reason if action == "reason" else row.comment
                    setattr(row, action, value)  # "reason" or "comment"
                    self._audit(s, stop, seg.start, action, old, value, who)
                    return self._segment(s, stop, seg.start)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def set_reason(self, who: Principal, machine: Asset, stop_start: int,
                   segment_start: int | None, reason: str | None) -> Segment:
        """Give (or with None take back) a segment's reason."""
        return self._write(who, machine, stop_start, segment_start, "reason", reason)

    def set_comment(self, who: Principal, machine: Asset, stop_start: int,
                    segment_start: int | None, comment: str | None) -> Segment:
        if comment is not None and len(comment) > MAX_COMMENT:
            raise StopError(f"a comment has at most {MAX_COMMENT} characters")
        return self._write(who, machine, stop_start, segment_start, "comment", comment or None)

    def split(self, who: Principal, machine: Asset, stop_start: int, at: int
              ) -> list[Segment]:
        """Split the segment holding ``at`` there; the new segment keeps its reason."""
        stop = self._stop(machine, stop_start)
        if not stop.start < at < stop.end:
            raise StopError(f"split at {iso(at)}: not inside the stop "
                            f"({iso(stop.start)} to {iso(stop.end)})")
        with self.db.session() as s:
            segs = segments_of(s, [stop])
            holder = next(g for g in segs if g.start <= at < g.end)
            if holder.start == at:
                raise StopError("the stop is already split there")
            said = holder.reason if holder.source == "person" else None
            s.add(StopSegment(machine=stop.machine, stop_start=stop.start, segment_start=at,
                              reason=said, comment=None, updated_by=who.name,
                              updated_at=time.time_ns()))
            self._audit(s, stop, holder.start, "split", None, str(at), who)
            s.flush()
            return segments_of(s, [stop])

    @staticmethod
    def _row(s: Session, stop: Stop, segment_start: int, who: Principal) -> StopSegment:
        row = s.scalars(select(StopSegment).where(
            StopSegment.machine == stop.machine, StopSegment.stop_start == stop.start,
            StopSegment.segment_start == segment_start)).one_or_none()
        if row is None:
            row = StopSegment(machine=stop.machine, stop_start=stop.start,
                              segment_start=segment_start, reason=None, comment=None)
            s.add(row)
        row.updated_by, row.updated_at = who.name, time.time_ns()
        return row

    @staticmethod
    def _audit(s: Session, stop: Stop, segment_start: int, action: str, old: str | None,
               new: str | None, who: Principal) -> None:
        s.add(StopAudit(machine=stop.machine, stop_start=stop.start,
                        segment_start=segment_start, action=action, old_value=old,
                        new_value=new, who=who.name, at=time.time_ns()))
        s.flush()  # a concurrent insert of the same segment fails here, inside the retry


def audit_of(s: Session, machines: list[str], t0: int, t1: int, limit: int = 1000
             ) -> list[dict[str, Any]]:
    """The changes to the stops of ``machines`` that began in [t0, t1), newest first."""
    rows = s.scalars(select(StopAudit).where(
        StopAudit.machine.in_(machines), StopAudit.stop_start >= t0,
        StopAudit.stop_start < t1).order_by(StopAudit.at.desc(), StopAudit.id.desc())
        .limit(limit))
    return [{"machine": r.machine, "stop_start": str(r.stop_start),
             "segment_start": str(r.segment_start), "action": r.action,
             "old": r.old_value, "new": r.new_value, "who": r.who, "at": iso(r.at)}
            for r in rows]
