"""The tables of the operations database (SQLAlchemy 2 declarative); the migrations in
``migrations/versions`` create exactly these (``tests/test_operations_db.py`` compares).

Times are integer ns since the epoch UTC, as everywhere in shopfloor. A stop is named by
its machine (asset id) and its start (ns): the start of a state episode is the time of a
stored sample, so the name survives every recomputation of the episodes.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ASSET = 400  # asset ids: up to 6 segments of 64


class Base(DeclarativeBase):
    pass


class Reason(Base):
    """One node of an enterprise's reason tree."""

    __tablename__ = "reasons"
    enterprise: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent: Mapped[str | None] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str | None] = mapped_column(String(200))
    loss: Mapped[str] = mapped_column(String(32))  # one of reasons.LOSSES
    planned: Mapped[bool] = mapped_column(Boolean)
    position: Mapped[int] = mapped_column(Integer, default=0)  # order among siblings


class _SegmentRef:
    """A row about the segment ``segment_start`` of the stop (machine, stop_start)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    machine: Mapped[str] = mapped_column(String(ASSET))
    stop_start: Mapped[int] = mapped_column(BigInteger)
    segment_start: Mapped[int] = mapped_column(BigInteger)


class StopSegment(_SegmentRef, Base):
    """What people said about (part of) a stop: the segment of stop (machine, stop_start)
    from ``segment_start`` to the next segment's start or the stop's end."""

    __tablename__ = "stop_segments"
    __table_args__ = (UniqueConstraint("machine", "stop_start", "segment_start"),)
    reason: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class StopAudit(_SegmentRef, Base):
    """Every change to a stop: who, when, what it was and what it became."""

    __tablename__ = "stop_audit"
    __table_args__ = (Index("ix_stop_audit_stop", "machine", "stop_start"),)
    action: Mapped[str] = mapped_column(String(16))  # reason | comment | split
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    who: Mapped[str] = mapped_column(String(200))
    at: Mapped[int] = mapped_column(BigInteger)


class EnteredCount(Base):
    """A count a person entered for a machine at an instant (``rollup/entered.py`` says
    what it does to the figures). Deleted entries stay, with who deleted them."""

    __tablename__ = "count_entries"
    __table_args__ = (Index("ix_count_entries_at", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    machine: Mapped[str] = mapped_column(String(ASSET))
    kind: Mapped[str] = mapped_column(String(16))  # entered.KINDS
    quantity: Mapped[int] = mapped_column(Integer)
    at: Mapped[int] = mapped_column(BigInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[int] = mapped_column(BigInteger)
    deleted_by: Mapped[str | None] = mapped_column(String(200))
    deleted_at: Mapped[int | None] = mapped_column(BigInteger)


class CountAudit(Base):
    """Every change to an entered count: who, when, what it was and what it became (JSON
    of kind, quantity, at, comment; null before an entry or after its deletion)."""

    __tablename__ = "count_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("count_entries.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # add | change | delete
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    who: Mapped[str] = mapped_column(String(200))
    at: Mapped[int] = mapped_column(BigInteger)


class Order(Base):
    """A production order (or a shift's plan) of a line."""

    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_no: Mapped[str] = mapped_column(String(64), unique=True)
    line: Mapped[str] = mapped_column(String(ASSET), index=True)
    product: Mapped[str] = mapped_column(String(64))
    planned_qty: Mapped[int] = mapped_column(Integer)
    planned_start: Mapped[int] = mapped_column(BigInteger)
    planned_end: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)


class Target(Base):
    """The target OEE of an asset (a line, usually)."""

    __tablename__ = "targets"
    scope: Mapped[str] = mapped_column(String(ASSET), primary_key=True)
    oee: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class AlertRule(Base):
    __tablename__ = "alert_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))  # alerts.KINDS
    scope: Mapped[str] = mapped_column(String(ASSET))
    state: Mapped[str | None] = mapped_column(String(32))  # kind "state"
    for_s: Mapped[float] = mapped_column(Float, default=0.0)
    threshold: Mapped[float | None] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)


class Alert(Base):
    """One alert of a rule about one asset. ``open_key`` is ``"{rule}:{asset}"`` while it
    is open and NULL once resolved: unique, so two evaluators (servers) sharing the
    database cannot both open it."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    asset: Mapped[str] = mapped_column(String(ASSET))
    open_key: Mapped[str | None] = mapped_column(String(ASSET + 24), unique=True)
    opened_at: Mapped[int] = mapped_column(BigInteger, index=True)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)


class AlertEvent(Base):
    """An alert's opening or resolution, to be delivered on every channel; a delivery is
    claimed (``claimed_by`` until ``claimed_until``) before it is attempted."""

    __tablename__ = "alert_events"
    __table_args__ = (UniqueConstraint("alert_id", "event"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(16))  # open | resolve
    at: Mapped[int] = mapped_column(BigInteger)
    webhook_done: Mapped[bool] = mapped_column(Boolean, default=False)
    mqtt_done: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
