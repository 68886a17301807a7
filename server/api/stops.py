"""Stops and their reasons: ``/stops`` (a window's stops, by segment), ``/stops/reason``,
``/stops/comment``, ``/stops/split`` (an operator of the machine's line, an engineer or
an admin), ``/stops/audit``, ``/pareto`` (losses by reason), ``/reasons`` (the tree;
engineers change it) and ``/whoami``.

Stop and segment starts are ns since the epoch as decimal strings (JSON numbers cannot
hold them exactly in a browser); they name a stop for good (``operations/stops.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from shopfloor.server.api.deps import RegistryDep, WindowDep, machine_of
from shopfloor.server.api.people import OperationsDep, PrincipalDep, must
from shopfloor.server.operations import reasons
from shopfloor.server.operations.pareto import pareto
from shopfloor.server.operations.stops import Segment, StopError, audit_of
from shopfloor.times import datetime_ns

router = APIRouter(prefix="/api/v1", tags=["stops"])
Ns = Annotated[int, Field(ge=0, description="ns since the epoch (a decimal string or number)")]


class StopRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    machine: str = Field(min_length=1, max_length=400, description="the machine's asset id")
    stop_start: Ns
    segment_start: Ns | None = Field(None, description="default: the stop's first segment")


class ReasonBody(StopRef):
    reason: str | None = Field(description="a reason code of the tree; null takes it back")


class CommentBody(StopRef):
    comment: str | None = Field(max_length=2000)


class SplitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    machine: str = Field(min_length=1, max_length=400)
    stop_start: Ns
    at: datetime = Field(description="where to split, ISO 8601 (UTC if no zone)")


async def _unclassified(unclassified: Annotated[bool, Query(
        description="only the segments without a reason")] = False) -> bool:
    return unclassified


def _segments(ops: OperationsDep, window: WindowDep) -> list[Segment]:
    return ops.book.segments(window.equipment, window.t0, window.t1)


@router.get("/stops")
def get_stops(window: WindowDep, ops: OperationsDep,
              unclassified: Annotated[bool, Depends(_unclassified)]) -> dict[str, Any]:
    """The stops (IDLE, DOWN, SETUP episodes) of the equipment under ``scope`` that
    overlap the window, one row per segment, with the reason the machine or a person
    gave, oldest first."""
    segs = _segments(ops, window)
    rows = [g.to_json() for g in segs if not unclassified or g.reason is None]
    return {**window.head(), "stops": rows}


def _change(ops: OperationsDep, who: PrincipalDep, registry: RegistryDep, ref: StopRef | SplitBody,
            apply: Any) -> Any:
    machine = machine_of(registry, ref.machine)
    must(who, who.may_work_on(machine.id), f"change the stops of {machine.id}")
    try:
        return apply(machine)
    except StopError as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/stops/reason")
def set_reason(body: ReasonBody, ops: OperationsDep, who: PrincipalDep,
               registry: RegistryDep) -> dict[str, Any]:
    """Give a stop segment a reason (or take it back with null); kept in the audit."""
    return _change(ops, who, registry, body, lambda m: ops.book.set_reason(
        who, m, body.stop_start, body.segment_start, body.reason)).to_json()


@router.post("/stops/comment")
def set_comment(body: CommentBody, ops: OperationsDep, who: PrincipalDep,
                registry: RegistryDep) -> dict[str, Any]:
    """Comment a stop segment (null or "" removes the comment); kept in the audit."""
    done = ops.book.set_comment
    return _change(ops, who, registry, body, lambda m: done(
        who, m, body.stop_start, body.segment_start, body.comment)).to_json()


@router.post("/stops/split")
def split(body: SplitBody, ops: OperationsDep, who: PrincipalDep,
          registry: RegistryDep) -> list[dict[str, Any]]:
    """Split a stop's segment at ``at``; the new segment keeps the reason a person gave.
    Returns the stop's segments."""
    segs = _change(ops, who, registry, body, lambda m: ops.book.split(
        who, m, body.stop_start, datetime_ns(body.at)))
    return [g.to_json() for g in segs]


@router.get("/stops/audit")
def get_audit(window: WindowDep, ops: OperationsDep) -> dict[str, Any]:
    """Every change to the stops (of the equipment under ``scope``) that began in the
    window or up to ``stop_lookback_s`` before it: who, when, old and new value."""
    lookback = ops.book.lookback_ns
    with ops.db.session() as s:
        rows = audit_of(s, [a.id for a in window.equipment], window.t0 - lookback, window.t1)
    return {**window.head(), "changes": rows}


@router.get("/pareto")
def get_pareto(window: WindowDep, ops: OperationsDep) -> dict[str, Any]:
    """Stop time by reason (largest first) over the window, each reason with its loss
    (one of the six big losses) and planned flag; ``unclassified`` is the stop time no
    one has given a reason. They add up to IDLE + DOWN + SETUP time of /oee."""
    segs = _segments(ops, window)
    with ops.db.session() as s:
        return {**window.head(), **pareto(s, segs, window.t0, window.t1)}


@router.get("/reasons")
def get_reasons(ops: OperationsDep, registry: RegistryDep, enterprise: Annotated[str, Query(
        description="enterprise id")]) -> dict[str, Any]:
    """The enterprise's reason tree."""
    if registry.get(enterprise) is None:
        raise HTTPException(404, f"no enterprise {enterprise!r}")
    with ops.db.session() as s:
        return {"enterprise": enterprise,
                "reasons": reasons.tree_json(reasons.reasons_of(s, enterprise))}


@router.put("/reasons")
def put_reason(body: reasons.ReasonIn, ops: OperationsDep, who: PrincipalDep,
               registry: RegistryDep) -> dict[str, Any]:
    """Add or change a reason (engineers and admins)."""
    must(who, who.may_plan, "change the reason tree")
    if registry.get(body.enterprise) is None:
        raise HTTPException(404, f"no enterprise {body.enterprise!r}")
    with ops.db.session() as s:
        try:
            return reasons.to_json(reasons.upsert(s, body))
        except KeyError as exc:
            raise HTTPException(409, str(exc)) from None


@router.get("/whoami")
def whoami(who: PrincipalDep) -> dict[str, Any]:
    """The presented token's name, role and lines (anonymous: a viewer)."""
    return who.to_json()
