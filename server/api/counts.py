"""Counts people enter: ``/counts`` (a window's entries; an operator of the machine's
line, an engineer or an admin adds, changes and deletes them) and ``/counts/audit``
(every change: who, when, old and new value). What an entry does to the figures:
``rollup/entered.py``; the checks: ``operations/counts.py``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from shopfloor.server.api.deps import RegistryDep, SourceDep, WindowDep, machine_of
from shopfloor.server.api.people import OperationsDep, PrincipalDep, must
from shopfloor.server.operations.counts import CountChange, CountError, CountIn
from shopfloor.server.registry import Asset, Registry
from shopfloor.server.roles import Principal

router = APIRouter(prefix="/api/v1", tags=["counts"])
EntryId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the entry's id")]


def _ids(window: WindowDep) -> list[str]:
    return [a.id for a in window.equipment]


@router.get("/counts")
def get_counts(window: WindowDep, ops: OperationsDep) -> dict[str, Any]:
    """The counts entered for the equipment under ``scope`` that count in the window,
    oldest first, with their sums by kind."""
    rows = ops.counts.listed(_ids(window), window.t0, window.t1)
    sums = {k: sum(r["quantity"] for r in rows if r["kind"] == k) for k in ("total", "reject")}
    return {**window.head(), "entries": rows, "sums": sums}


@router.get("/counts/audit")
def get_counts_audit(window: WindowDep, ops: OperationsDep) -> dict[str, Any]:
    """Every change to the entries (deleted ones too) of the equipment under ``scope``
    that count in the window, newest first."""
    return {**window.head(), "changes": ops.counts.audit(_ids(window), window.t0, window.t1)}


def _allowed(who: Principal, registry: Registry, machine: str) -> Asset:
    asset = machine_of(registry, machine)
    must(who, who.may_work_on(asset.id), f"enter counts for {asset.id}")
    return asset


def _entry_machine(ops: OperationsDep, entry_id: int) -> str:
    row = ops.counts.get(entry_id)
    if row is None:
        raise HTTPException(404, f"no count entry {entry_id}")
    return row.machine


def _refused(exc: CountError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


@router.post("/counts", status_code=201)
def add_count(body: CountIn, ops: OperationsDep, who: PrincipalDep, registry: RegistryDep,
              source: SourceDep) -> dict[str, Any]:
    """Enter a count for a machine (kept in the audit): 422 for a time in the future or
    a machine that is not one, 404 for one outside the registry, 409 when the machine
    would have more rejects than parts in the entry's shift (else its UTC day)."""
    machine = _allowed(who, registry, body.machine)
    try:
        return ops.counts.add(who, machine, body, source)
    except CountError as exc:
        raise _refused(exc) from None


@router.patch("/counts/{entry_id}")
def change_count(entry_id: EntryId, body: CountChange, ops: OperationsDep, who: PrincipalDep,
                 registry: RegistryDep, source: SourceDep) -> dict[str, Any]:
    """Change an entry's kind, quantity, time or comment (kept in the audit)."""
    machine = _allowed(who, registry, _entry_machine(ops, entry_id))
    try:
        return ops.counts.change(who, machine, entry_id, body, source)
    except CountError as exc:
        raise _refused(exc) from None


@router.delete("/counts/{entry_id}", status_code=204)
def delete_count(entry_id: EntryId, ops: OperationsDep, who: PrincipalDep, registry: RegistryDep,
                 source: SourceDep) -> None:
    """Delete an entry: it leaves every figure and stays in the audit."""
    machine = _allowed(who, registry, _entry_machine(ops, entry_id))
    try:
        ops.counts.delete(who, machine, entry_id, source)
    except CountError as exc:
        raise _refused(exc) from None
