"""Production orders (or a shift's plan) per line and target OEE per asset, and how the
line did against them.

An order's window is [planned_start, planned_end) clipped to now; its parts and OEE are
the line's over that window, read like /oee (``QuantitySource``), so an order's figures
equal /oee's for the same window. By product: the orders of each product summed (times,
counts, ideal time), then the ratios. Plan to date: the planned quantity times the share
of the order's window that has passed.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from shopfloor.config import Strict
from shopfloor.server import oee
from shopfloor.server.config import OeeConfig
from shopfloor.server.operations.reasons import CODE
from shopfloor.server.operations.schema import Order, Target
from shopfloor.server.registry import Registry
from shopfloor.server.roles import Principal
from shopfloor.server.rollup.source import QuantitySource
from shopfloor.times import datetime_ns, iso

KPIS = ("availability", "performance", "quality", "oee")


class PlanError(ValueError):
    """An order or target that cannot be taken."""


class OrderIn(Strict):
    order_no: str = Field(pattern=CODE, description="unique order number")
    line: str = Field(min_length=1, max_length=400, description="asset id of the line")
    product: str = Field(min_length=1, max_length=64)
    planned_qty: int = Field(ge=1, le=10**9, description="good parts planned")
    planned_start: datetime = Field(description="ISO 8601 (UTC if no zone)")
    planned_end: datetime

    @field_validator("planned_end")
    @classmethod
    def _after(cls, v: datetime, info: Any) -> datetime:
        start = info.data.get("planned_start")
        if start is not None and datetime_ns(v) <= datetime_ns(start):
            raise ValueError("planned_end must be after planned_start")
        return v


class TargetIn(Strict):
    scope: str = Field(min_length=1, max_length=400, description="asset id (a line)")
    oee: float = Field(gt=0, le=1, description="target OEE, 0..1")


def add_order(s: Session, who: Principal, given: OrderIn, registry: Registry) -> Order:
    asset = registry.get(given.line)
    if asset is None or asset.level not in ("line", "equipment"):
        raise PlanError(f"{given.line!r} is not a line (or machine) of the registry")
    if s.scalars(select(Order).where(Order.order_no == given.order_no)).first():
        raise PlanError(f"order {given.order_no!r} exists")
    row = Order(order_no=given.order_no, line=given.line, product=given.product,
                planned_qty=given.planned_qty,
                planned_start=datetime_ns(given.planned_start),
                planned_end=datetime_ns(given.planned_end), created_by=who.name,
                created_at=time.time_ns())
    s.add(row)
    s.flush()
    return row


def orders_in(s: Session, assets: list[str], t0: int, t1: int) -> list[Order]:
    """Orders of the lines (or machines) ``assets`` whose window overlaps [t0, t1)."""
    return list(s.scalars(select(Order).where(
        Order.line.in_(assets), Order.planned_start < t1, Order.planned_end > t0)
        .order_by(Order.planned_start, Order.order_no)))


def set_target(s: Session, who: Principal, given: TargetIn, registry: Registry) -> Target:
    if registry.get(given.scope) is None:
        raise PlanError(f"{given.scope!r} is not an asset of the registry")
    row = s.get(Target, given.scope)
    if row is None:
        row = Target(scope=given.scope)
        s.add(row)
    row.oee, row.updated_by, row.updated_at = given.oee, who.name, time.time_ns()
    return row


def targets(s: Session) -> dict[str, float]:
    return {t.scope: t.oee for t in s.scalars(select(Target))}


def target_of(s: Session, asset_id: str) -> float | None:
    """The target of the asset, else of the nearest asset above it that has one."""
    parts = asset_id.split("/")
    for n in range(len(parts), 0, -1):
        row = s.get(Target, "/".join(parts[:n]))
        if row is not None:
            return row.oee
    return None


def performance(source: QuantitySource, registry: Registry, cfg: OeeConfig,
                orders: list[Order], now: int | None = None) -> dict[str, Any]:
    """Each order's parts made against plan and its OEE; the same by product."""
    now = time.time_ns() if now is None else now
    rows, by_product = [], {}
    for o in orders:
        line = registry.get(o.line)
        t1 = min(o.planned_end, now)
        doc: dict[str, Any] = {
            "order_no": o.order_no, "line": o.line, "product": o.product,
            "planned_qty": o.planned_qty, "planned_start": iso(o.planned_start),
            "planned_end": iso(o.planned_end), "created_by": o.created_by,
            "status": "planned" if now < o.planned_start else
            "running" if now < o.planned_end else "done"}
        if line is None or t1 <= o.planned_start:
            rows.append({**doc, "good": 0, "total": 0, "plan_to_date": 0,
                         "progress": 0.0, **dict.fromkeys(KPIS)})
            continue
        q = oee.MetricsQuery.of(cfg, o.planned_start, t1)
        totals = oee.totals_of(source, registry.equipment_under(line), q)
        rep = oee.report(totals)
        good = rep["counts"]["good"]
        share = (t1 - o.planned_start) / (o.planned_end - o.planned_start)
        rows.append({**doc, "good": good, "total": rep["counts"]["total"],
                     "plan_to_date": o.planned_qty * share,
                     "progress": good / o.planned_qty, **{k: rep[k] for k in KPIS}})
        by_product.setdefault(o.product, oee.Totals()).add(totals)
    products = {p: {"good": (r := oee.report(t))["counts"]["good"],
                    "total": r["counts"]["total"], **{k: r[k] for k in KPIS}}
                for p, t in by_product.items()}
    return {"orders": rows, "by_product": products,
            "planned_qty": sum(o.planned_qty for o in orders),
            "good": sum(r["good"] for r in rows),
            "plan_to_date": sum(r["plan_to_date"] for r in rows)}
