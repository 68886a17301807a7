"""Plans and targets: ``/orders`` (a window's orders with parts made against plan, OEE by
order and by product; engineers add and remove them) and ``/targets`` (target OEE per
asset; engineers set them)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from sqlalchemy import delete

from shopfloor.server.api.deps import ConfigDep, RegistryDep, SourceDep, WindowDep
from shopfloor.server.api.people import OperationsDep, PrincipalDep, must
from shopfloor.server.operations import plans
from shopfloor.server.operations.schema import Order

router = APIRouter(prefix="/api/v1", tags=["plans"])


@router.get("/orders")
def get_orders(window: WindowDep, ops: OperationsDep, source: SourceDep, config: ConfigDep,
               registry: RegistryDep) -> dict[str, Any]:
    """The orders of the lines under ``scope`` overlapping the window, each with its good
    parts, plan to date and OEE over its own window (clipped to now); the same summed by
    product; the target OEE of ``scope``."""
    assets = [a.id for a in window.asset.walk()]
    with ops.db.session() as s:
        orders = plans.orders_in(s, assets, window.t0, window.t1)
        target = plans.target_of(s, window.asset.id)
    doc = plans.performance(source, registry, config.oee, orders)
    return {**window.head(), "target_oee": target, **doc}


def _plan(ops: OperationsDep, who: PrincipalDep, what: str, status: int, write: Any) -> Any:
    """``write(session)`` for an engineer or admin; a ``PlanError`` answers ``status``."""
    must(who, who.may_plan, what)
    with ops.db.session() as s:
        try:
            return write(s)
        except plans.PlanError as exc:
            raise HTTPException(status, str(exc)) from None


@router.post("/orders", status_code=201)
def add_order(body: plans.OrderIn, ops: OperationsDep, who: PrincipalDep,
              registry: RegistryDep) -> dict[str, Any]:
    """Add a production order (engineers and admins)."""
    row = _plan(ops, who, "add orders", 409, lambda s: plans.add_order(s, who, body, registry))
    return {"order_no": row.order_no, "line": row.line, "product": row.product,
            "planned_qty": row.planned_qty}


@router.delete("/orders/{order_no}", status_code=204)
def delete_order(order_no: str, ops: OperationsDep, who: PrincipalDep) -> None:
    """Remove an order (engineers and admins)."""
    must(who, who.may_plan, "remove orders")
    with ops.db.session() as s:
        if s.execute(delete(Order).where(Order.order_no == order_no)).rowcount == 0:
            raise HTTPException(404, f"no order {order_no!r}")


@router.get("/targets")
def get_targets(ops: OperationsDep) -> dict[str, float]:
    """Asset id -> target OEE."""
    with ops.db.session() as s:
        return plans.targets(s)


@router.put("/targets")
def put_target(body: plans.TargetIn, ops: OperationsDep, who: PrincipalDep,
               registry: RegistryDep) -> dict[str, Any]:
    """Set an asset's target OEE (engineers and admins)."""
    row = _plan(ops, who, "set targets", 404, lambda s: plans.set_target(s, who, body, registry))
    return {"scope": row.scope, "oee": row.oee, "updated_by": row.updated_by}
