"""Counts people enter for a machine: rejects found at end-of-line inspection, or the
parts of a machine that does not count them (``rollup/entered.py``: what an entry does
to the figures).

An entry is a kind (``total``: parts made; ``reject``: of the parts counted, this many
were bad), a quantity (a whole number from 1), the machine, the instant it counts at
(default: now; never in the future) and a comment. ``CountBook`` adds, changes and
deletes them, each with a ``CountAudit`` row (who, when, old and new value); a deleted
entry stays in the table, out of every figure. It refuses a change that would leave a
machine more rejects than parts in the shift holding the entry (without a calendar, or
outside every shift: the UTC day), counted and entered together. ``CountBook.entries``
is what every ``QuantitySource`` reads (``EnteredCounts``).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from shopfloor.config import Strict
from shopfloor.server.calendar import shift_at
from shopfloor.server.config import OeeConfig
from shopfloor.server.oee import MetricsQuery
from shopfloor.server.operations.db import Database
from shopfloor.server.operations.schema import CountAudit, EnteredCount
from shopfloor.server.registry import Asset
from shopfloor.server.roles import Principal
from shopfloor.server.rollup.entered import CountEntry, Kind
from shopfloor.server.rollup.source import QuantitySource
from shopfloor.times import NS, datetime_ns, iso

MAX_QUANTITY = 1_000_000
MAX_COMMENT = 2000
DAY_NS = 86400 * NS
IN_LIST = 500  # more machines than this: select by time alone, then filter here

QUANTITY = "parts, a whole number from 1 (to correct an entry, change or delete it)"
AT = "when the parts count, ISO 8601 (UTC if no zone); not in the future"


class CountError(ValueError):
    """An entry that cannot be taken; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


class CountIn(Strict):
    machine: str = Field(min_length=1, max_length=400, description="the machine's asset id")
    kind: Kind = Field(description="total: parts made (with any rejects among them); "
                                   "reject: of the parts counted, this many were bad")
    quantity: int = Field(ge=1, le=MAX_QUANTITY, description=QUANTITY)
    at: datetime | None = Field(None, description=f"{AT}; default now")
    comment: str | None = Field(None, max_length=MAX_COMMENT)


class CountChange(Strict):
    """The fields to change (absent: unchanged; a null or empty comment removes it)."""

    kind: Kind | None = None
    quantity: int | None = Field(None, ge=1, le=MAX_QUANTITY, description=QUANTITY)
    at: datetime | None = Field(None, description=AT)
    comment: str | None = Field(None, max_length=MAX_COMMENT)


def check_window(oee: OeeConfig, at: int) -> tuple[str, int, int]:
    """(label, start, end) of the span an entry at ``at`` is checked over: the shift
    holding it, else its UTC day."""
    found = shift_at(oee.calendar, at) if oee.calendar is not None else None
    if found is not None:
        return f"shift {found[0]}", found[1], found[2]
    day = at - at % DAY_NS
    return f"the day {iso(day)[:10]}", day, day + DAY_NS


def _value(row: EnteredCount) -> dict[str, Any]:
    return {"kind": row.kind, "quantity": row.quantity, "at": iso(row.at),
            "comment": row.comment}


def to_json(row: EnteredCount) -> dict[str, Any]:
    return {"id": row.id, "machine": row.machine, **_value(row),
            "created_by": row.created_by, "created_at": iso(row.created_at),
            "updated_by": row.updated_by, "updated_at": iso(row.updated_at)}


class CountBook:
    """The entered counts of one operations database."""

    def __init__(self, db: Database, oee: OeeConfig):
        self.db, self.oee = db, oee

    # --- read ------------------------------------------------------------------------

    def entries(self, machines: list[str], t0: int, t1: int) -> list[CountEntry]:
        """The live entries of ``machines`` with t0 <= at < t1 (``EnteredCounts``)."""
        with self.db.session() as s:
            return [CountEntry(r.machine, r.kind, r.quantity, r.at)  # type: ignore[arg-type]
                    for r in self._rows(s, machines, t0, t1)]

    def listed(self, machines: list[str], t0: int, t1: int) -> list[dict[str, Any]]:
        """The same for the API, oldest first."""
        with self.db.session() as s:
            return [to_json(r) for r in self._rows(s, machines, t0, t1)]

    @staticmethod
    def _rows(s: Session, machines: list[str], t0: int, t1: int) -> list[EnteredCount]:
        if not machines:
            return []
        q = select(EnteredCount).where(EnteredCount.deleted_at.is_(None),
                                       EnteredCount.at >= t0, EnteredCount.at < t1)
        if len(machines) <= IN_LIST:
            q = q.where(EnteredCount.machine.in_(machines))
        wanted = set(machines)
        return [r for r in s.scalars(q.order_by(EnteredCount.at, EnteredCount.id))
                if r.machine in wanted]

    def get(self, entry_id: int) -> EnteredCount | None:
        """A live entry."""
        with self.db.session() as s:
            row = s.get(EnteredCount, entry_id)
            return row if row is not None and row.deleted_at is None else None

    def audit(self, machines: list[str], t0: int, t1: int, limit: int = 1000
              ) -> list[dict[str, Any]]:
        """The changes to the entries (deleted ones too) of ``machines`` counted in
        [t0, t1), newest first."""
        with self.db.session() as s:
            rows = s.execute(select(CountAudit, EnteredCount.machine).join(EnteredCount).where(
                EnteredCount.machine.in_(machines), EnteredCount.at >= t0,
                EnteredCount.at < t1).order_by(CountAudit.at.desc(), CountAudit.id.desc())
                .limit(limit))
            return [{"entry_id": a.entry_id, "machine": machine, "action": a.action,
                     "old": json.loads(a.old_value) if a.old_value else None,
                     "new": json.loads(a.new_value) if a.new_value else None,
                     "who": a.who, "at": iso(a.at)} for a, machine in rows]

    # --- write -----------------------------------------------------------------------

    def add(self, who: Principal, machine: Asset, given: CountIn, source: QuantitySource,
            now: int | None = None) -> dict[str, Any]:
        now = time.time_ns() if now is None else now
        at = self._instant(given.at, now)
        self._check(source, machine, [(at, given.kind, given.quantity)])
        with self.db.session() as s:
            row = EnteredCount(machine=machine.id, kind=given.kind, quantity=given.quantity,
                               at=at, comment=given.comment or None, created_by=who.name,
                               created_at=now, updated_by=who.name, updated_at=now)
            s.add(row)
            s.flush()
            self._audit(s, row.id, "add", None, _value(row), who, now)
            return to_json(row)

    def change(self, who: Principal, machine: Asset, entry_id: int, given: CountChange,
               source: QuantitySource, now: int | None = None) -> dict[str, Any]:
        now = time.time_ns() if now is None else now
        with self.db.session() as s:
            row = self._live(s, entry_id)
            old = _value(row)
            fields = given.model_fields_set
            kind = given.kind if given.kind is not None else row.kind
            quantity = given.quantity if given.quantity is not None else row.quantity
            at = self._instant(given.at, now) if given.at is not None else row.at
            self._check(source, machine, [(row.at, row.kind, -row.quantity),
                                          (at, kind, quantity)])
            row.kind, row.quantity, row.at = kind, quantity, at
            if "comment" in fields:
                row.comment = given.comment or None
            row.updated_by, row.updated_at = who.name, now
            self._audit(s, row.id, "change", old, _value(row), who, now)
            return to_json(row)

    def delete(self, who: Principal, machine: Asset, entry_id: int, source: QuantitySource,
               now: int | None = None) -> None:
        now = time.time_ns() if now is None else now
        with self.db.session() as s:
            row = self._live(s, entry_id)
            self._check(source, machine, [(row.at, row.kind, -row.quantity)])
            row.deleted_by, row.deleted_at = who.name, now
            self._audit(s, row.id, "delete", _value(row), None, who, now)

    # --- how -------------------------------------------------------------------------

    @staticmethod
    def _instant(at: datetime | None, now: int) -> int:
        if at is None:
            return now
        t = datetime_ns(at)
        if t > now:
            raise CountError(f"at={iso(t)} is in the future (the server's time is {iso(now)})",
                             422)
        if t < 0:
            raise CountError(f"at={at.isoformat()} is before 1970", 422)
        return t

    @staticmethod
    def _live(s: Session, entry_id: int) -> EnteredCount:
        row = s.get(EnteredCount, entry_id, with_for_update=True)
        if row is None or row.deleted_at is not None:
            raise CountError(f"no count entry {entry_id}", 404)
        return row

    def _check(self, source: QuantitySource, machine: Asset,
               deltas: list[tuple[int, str, int]]) -> None:
        """Refuse ``deltas`` ((at, kind, signed quantity), applied to what is stored) if
        they leave the machine more rejects than parts in a window they touch."""
        by_window: dict[tuple[str, int, int], list[float]] = {}
        for at, kind, n in deltas:
            d = by_window.setdefault(check_window(self.oee, at), [0.0, 0.0])
            d[kind == "reject"] += n
        for (label, t0, t1), (d_total, d_reject) in by_window.items():
            if d_total >= 0 and d_reject <= 0:
                continue  # more parts or fewer rejects never breaks it
            q = source.per_device([machine], MetricsQuery.of(self.oee, t0, t1).definition,
                                  t0, t1).get(machine.id)
            total = (float(q["total"][0]) if q is not None else 0.0) + d_total
            reject = (float(q["reject"][0]) if q is not None else 0.0) + d_reject
            if reject > total:
                raise CountError(
                    f"{machine.id} would have {reject:g} rejects but {total:g} parts in "
                    f"{label} ({iso(t0)} to {iso(t1)}), counted and entered: enter the "
                    "parts first, or the rejects at the time of those parts")

    @staticmethod
    def _audit(s: Session, entry_id: int, action: str, old: dict | None, new: dict | None,
               who: Principal, now: int) -> None:
        s.add(CountAudit(entry_id=entry_id, action=action,
                         old_value=json.dumps(old) if old is not None else None,
                         new_value=json.dumps(new) if new is not None else None,
                         who=who.name, at=now))
