"""Alerts: ``/alerts`` (open and recent ones), ``/alert-rules`` (engineers add, enable,
disable and remove rules; the server's alert thread evaluates them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from shopfloor.server.api.deps import RegistryDep
from shopfloor.server.api.people import OperationsDep, PrincipalDep, must
from shopfloor.server.operations import alerts
from shopfloor.server.operations.schema import Alert, AlertRule

router = APIRouter(prefix="/api/v1", tags=["alerts"])


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


@router.get("/alerts")
def get_alerts(
    ops: OperationsDep,
    scope: Annotated[str | None, Query(description="only alerts about assets under it")] = None,
    status: Annotated[Literal["open", "all"], Query(description="open only, or all")] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Alerts, newest first."""
    with ops.db.session() as s:
        q = select(Alert).order_by(Alert.opened_at.desc(), Alert.id.desc())
        if status == "open":
            q = q.where(Alert.resolved_at.is_(None))
        if scope:
            q = q.where((Alert.asset == scope) | Alert.asset.startswith(scope + "/",
                                                                        autoescape=True))
        rules = {r.id: r for r in s.scalars(select(AlertRule))}
        return [alerts.alert_json(a, rules.get(a.rule_id)) for a in s.scalars(q.limit(limit))]


@router.get("/alert-rules")
def get_rules(ops: OperationsDep) -> list[dict[str, Any]]:
    with ops.db.session() as s:
        return [alerts.rule_json(r) for r in s.scalars(select(AlertRule).order_by(AlertRule.id))]


@router.post("/alert-rules", status_code=201)
def add_rule(body: alerts.RuleIn, ops: OperationsDep, who: PrincipalDep,
             registry: RegistryDep) -> dict[str, Any]:
    """Add an alert rule (engineers and admins)."""
    must(who, who.may_plan, "add alert rules")
    try:
        return alerts.rule_json(alerts.add_rule(ops.db, who, body, registry))
    except KeyError as exc:
        raise HTTPException(404, str(exc)) from None


@router.patch("/alert-rules/{rule_id}")
def patch_rule(rule_id: int, body: RulePatch, ops: OperationsDep, who: PrincipalDep
               ) -> dict[str, Any]:
    """Enable or disable a rule (its open alerts resolve at the next evaluation)."""
    must(who, who.may_plan, "change alert rules")
    with ops.db.session() as s:
        row = s.get(AlertRule, rule_id)
        if row is None:
            raise HTTPException(404, f"no alert rule {rule_id}")
        row.enabled = body.enabled
        return alerts.rule_json(row)


@router.delete("/alert-rules/{rule_id}", status_code=204)
def delete_rule(rule_id: int, ops: OperationsDep, who: PrincipalDep) -> None:
    """Remove a rule and its alert history."""
    must(who, who.may_plan, "remove alert rules")
    with ops.db.session() as s:
        row = s.get(AlertRule, rule_id)
        if row is None:
            raise HTTPException(404, f"no alert rule {rule_id}")
        s.delete(row)
