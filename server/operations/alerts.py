"""Alert rules and their evaluation: when a rule's condition holds for an asset an alert
opens (once: ``Alert.open_key`` is unique while it is open, so evaluators on several
servers sharing the database cannot open it twice), and when it no longer holds the
alert resolves (a conditional update: one evaluator wins). Each opening and resolution
is an ``AlertEvent`` that ``delivery`` sends, all in the same transaction as the change.

Rule kinds (``scope``: an asset id; machine rules apply to each machine under it):
- ``state``: a machine in ``state`` (default DOWN) for more than ``for_s``;
- ``no_data``: no sample from a machine for more than ``for_s``;
- ``oee_below_target``: the running shift's OEE of ``scope`` below ``threshold`` (else
  the asset's target), once the shift has run ``for_s``;
- ``reject_rate``: the running shift's reject share of ``scope`` above ``threshold``.
The shift's figures include the counts people entered (``counts``), as /oee does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from shopfloor.config import Strict
from shopfloor.contract import SIGNAL_STATE, State
from shopfloor.server import calendar, oee
from shopfloor.server.config import OeeConfig
from shopfloor.server.operations.counts import CountBook
from shopfloor.server.operations.db import Database
from shopfloor.server.operations.plans import target_of
from shopfloor.server.operations.schema import Alert, AlertEvent, AlertRule
from shopfloor.server.registry import Asset, Registry
from shopfloor.server.roles import Principal
from shopfloor.server.rollup.quantities import state_codes
from shopfloor.server.rollup.source import QuantitySource
from shopfloor.server.timeline import STATE_NAMES, intervals
from shopfloor.storage import SampleReader
from shopfloor.times import NS, iso

log = logging.getLogger("shopfloor.server.alerts")
Kind = Literal["state", "no_data", "oee_below_target", "reject_rate"]
MACHINE_KINDS = ("state", "no_data")


class RuleIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    scope: str = Field(min_length=1, max_length=400, description="asset id")
    state: State | None = Field(None, description="kind state: the state (default DOWN)")
    for_s: float = Field(0.0, ge=0, le=30 * 86400,
                         description="how long the condition must hold (state, no_data) "
                                     "or the shift must have run (OEE, rejects)")
    threshold: float | None = Field(None, ge=0, le=1,
                                    description="OEE below / reject share above this")
    enabled: bool = True

    @model_validator(mode="after")
    def _complete(self) -> RuleIn:
        if self.kind == "reject_rate" and self.threshold is None:
            raise ValueError("a reject_rate rule needs a threshold")
        if self.kind != "state" and self.state is not None:
            raise ValueError("state is only for rules of kind state")
        return self


def add_rule(db: Database, who: Principal, given: RuleIn, registry: Registry) -> AlertRule:
    if registry.get(given.scope) is None:
        raise KeyError(f"{given.scope!r} is not an asset of the registry")
    with db.session() as s:
        row = AlertRule(name=given.name, kind=given.kind, scope=given.scope,
                        state=(given.state or State.DOWN).value if given.kind == "state"
                        else None, for_s=given.for_s, threshold=given.threshold,
                        enabled=given.enabled, created_by=who.name, created_at=time.time_ns())
        s.add(row)
        s.flush()
        return row


def rule_json(r: AlertRule) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "kind": r.kind, "scope": r.scope, "state": r.state,
            "for_s": r.for_s, "threshold": r.threshold, "enabled": r.enabled,
            "created_by": r.created_by, "created_at": iso(r.created_at)}


def alert_json(a: Alert, rule: AlertRule | None) -> dict[str, Any]:
    return {"id": a.id, "rule_id": a.rule_id, "rule": rule.name if rule else None,
            "kind": rule.kind if rule else None, "asset": a.asset,
            "status": "open" if a.resolved_at is None else "resolved",
            "opened_at": iso(a.opened_at),
            "resolved_at": iso(a.resolved_at) if a.resolved_at is not None else None,
            "value": a.value, "message": a.message}


@dataclass(frozen=True)
class Condition:
    """What a rule finds about one asset now."""

    asset: str
    active: bool
    value: float | None
    message: str


class Evaluator:
    """Evaluates every enabled rule and records the alerts that open and resolve."""

    def __init__(self, db: Database, reader: SampleReader, rollups: Any, registry: Registry,
                 cfg: OeeConfig):
        self.db, self.reader, self.rollups = db, reader, rollups
        self.registry, self.cfg = registry, cfg
        self.counts = CountBook(db, cfg)

    def conditions(self, rule: AlertRule, now: int) -> list[Condition]:
        scope = self.registry.get(rule.scope)
        if scope is None:
            return []
        if rule.kind == "state":
            return [self._state(rule, m, now) for m in self.registry.equipment_under(scope)]
        if rule.kind == "no_data":
            seen = self.reader.last_seen()
            return [self._no_data(rule, m, seen.get(m.id), now)
                    for m in self.registry.equipment_under(scope)]
        return [c for c in [self._shift(rule, scope, now)] if c is not None]

    def _state(self, rule: AlertRule, m: Asset, now: int) -> Condition:
        assert m.device is not None
        q = oee.MetricsQuery.of(self.cfg, now - round((rule.for_s + 60) * NS), now)
        s = self.reader.read(m.device, SIGNAL_STATE, q.t0, q.t1)
        eps = intervals(s.ts, state_codes(s), q.t0, q.t1, q.stale_ns, q.steps)
        state, since = (STATE_NAMES[eps[-1][2]], eps[-1][0]) if eps else ("OFFLINE", q.t0)
        held = (now - since) / NS
        active = state == rule.state and held > rule.for_s
        return Condition(m.id, active, held, f"{m.name} {state} for {held:.0f} s "
                                             f"(since {iso(since)})")

    @staticmethod
    def _no_data(rule: AlertRule, m: Asset, last: int | None, now: int) -> Condition:
        quiet = None if last is None else (now - last) / NS
        active = quiet is None or quiet > rule.for_s
        return Condition(m.id, active, quiet, f"{m.name}: no data " + (
            "ever" if last is None else f"for {quiet:.0f} s (last {iso(last)})"))

    def _shift(self, rule: AlertRule, scope: Asset, now: int) -> Condition | None:
        label, start = calendar.current_shift(self.cfg.calendar, now)
        if now - start < rule.for_s * NS or now <= start:
            return Condition(scope.id, False, None, f"shift {label} just began")
        source = QuantitySource(self.reader, self.rollups, self.counts)
        rep = oee.report(oee.totals_of(source, self.registry.equipment_under(scope),
                                       oee.MetricsQuery.of(self.cfg, start, now)))
        if rule.kind == "oee_below_target":
            with self.db.session() as s:
                target = rule.threshold if rule.threshold is not None else target_of(
                    s, scope.id)
            value = rep["oee"]
            if target is None or value is None:
                return Condition(scope.id, False, value, "no target or no OEE yet")
            return Condition(scope.id, value < target, value,
                             f"{scope.name}: OEE of shift {label} {value:.1%} "
                             f"(target {target:.1%})")
        total = rep["counts"]["total"]
        value = rep["counts"]["reject"] / total if total else None
        assert rule.threshold is not None
        return Condition(scope.id, value is not None and value > rule.threshold, value,
                         f"{scope.name}: rejects {value or 0:.1%} of shift {label} "
                         f"(limit {rule.threshold:.1%})")

    def run_once(self, now: int | None = None) -> tuple[int, int]:
        """Evaluate every rule once; (alerts opened, alerts resolved) by this call."""
        now = time.time_ns() if now is None else now
        with self.db.session() as s:
            rules = list(s.scalars(select(AlertRule)))
            open_alerts = list(s.scalars(select(Alert).where(Alert.resolved_at.is_(None))))
        opened = resolved = 0
        holding: set[tuple[int, str]] = set()
        for rule in rules:
            if not rule.enabled:
                continue
            try:
                found = self.conditions(rule, now)
            except Exception:  # one broken rule must not stop the others
                log.exception("alert rule %d (%s) could not be evaluated", rule.id, rule.name)
                holding |= {(a.rule_id, a.asset) for a in open_alerts if a.rule_id == rule.id}
                continue
            for c in found:
                if c.active:
                    holding.add((rule.id, c.asset))
                    opened += self._open(rule, c, now)
        for a in open_alerts:
            if (a.rule_id, a.asset) not in holding:
                resolved += self._resolve(a, now)
        return opened, resolved

    def _open(self, rule: AlertRule, c: Condition, now: int) -> int:
        key = f"{rule.id}:{c.asset}"
        try:
            with self.db.session() as s:
                if s.scalars(select(Alert.id).where(Alert.open_key == key)).first():
                    return 0  # open already (deduplicated while active)
                alert = Alert(rule_id=rule.id, asset=c.asset, open_key=key, opened_at=now,
                              value=c.value, message=c.message)
                s.add(alert)
                s.flush()
                s.add(AlertEvent(alert_id=alert.id, event="open", at=now, webhook_done=False,
                                 mqtt_done=False, attempts=0))
        except IntegrityError:
            return 0  # another evaluator opened it first
        log.warning("alert opened: %s (rule %s)", c.message, rule.name)
        return 1

    def _resolve(self, a: Alert, now: int) -> int:
        with self.db.session() as s:
            done = s.execute(update(Alert).where(Alert.id == a.id, Alert.resolved_at.is_(None))
                             .values(resolved_at=now, open_key=None))
            if done.rowcount != 1:
                return 0  # another evaluator resolved it
            s.add(AlertEvent(alert_id=a.id, event="resolve", at=now, webhook_done=False,
                             mqtt_done=False, attempts=0))
        log.info("alert resolved: %s", a.message)
        return 1
