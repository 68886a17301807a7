"""The reason tree of each enterprise: codes people and machines give stops, each mapped
to one of the six big losses and to planned or unplanned.

A YAML file (``ReasonFile``: ``reasons`` for every enterprise, ``enterprises`` for one's
own) seeds the database at start: codes an enterprise does not have yet are added, what
is there (people may have changed it through the API) is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from shopfloor.config import Strict, load_config
from shopfloor.server.operations.schema import Reason

DEFAULT_TREE = Path(__file__).parent / "reasons.default.yaml"
# the six big losses, named as /losses names them (losses.report_losses)
Loss = Literal["failures", "setups", "small_stops", "slow_cycles", "process_rejects",
               "startup_rejects"]
CODE = r"^[A-Za-z0-9_.-]{1,64}$"


class Names(Strict):
    en: str = Field(min_length=1, max_length=200)
    zh: str | None = Field(None, max_length=200)


class ReasonNode(Strict):
    code: str = Field(pattern=CODE)
    name: Names
    loss: Loss | None = Field(None, description="default: the parent's")
    planned: bool | None = Field(None, description="default: the parent's (else false)")
    children: list[ReasonNode] = []


class ReasonFile(Strict):
    reasons: list[ReasonNode] = Field([], description="the tree of every enterprise")
    enterprises: dict[str, list[ReasonNode]] = Field(
        {}, description="enterprise id -> its own tree (instead of `reasons`)")

    def tree(self, enterprise: str) -> list[ReasonNode]:
        return self.enterprises.get(enterprise, self.reasons)


class ReasonIn(Strict):
    """A reason as the API takes it (added or changed by an engineer)."""

    enterprise: str = Field(min_length=1, max_length=64)
    code: str = Field(pattern=CODE)
    parent: str | None = Field(None, pattern=CODE)
    name_en: str = Field(min_length=1, max_length=200)
    name_zh: str | None = Field(None, max_length=200)
    loss: Loss
    planned: bool = False


def load_reason_file(path: Path | None) -> ReasonFile:
    return load_config(path or DEFAULT_TREE, ReasonFile)


def flatten(tree: list[ReasonNode], enterprise: str) -> list[Reason]:
    """The tree's rows, children inheriting loss and planned."""
    out: list[Reason] = []

    def walk(nodes: list[ReasonNode], parent: Reason | None) -> None:
        for pos, n in enumerate(nodes):
            loss = n.loss or (parent.loss if parent else None)
            if loss is None:
                raise ValueError(f"reason {n.code!r} has no loss (nor a parent with one)")
            planned = n.planned if n.planned is not None else (
                parent.planned if parent else False)
            row = Reason(enterprise=enterprise, code=n.code,
                         parent=parent.code if parent else None, name_en=n.name.en,
                         name_zh=n.name.zh, loss=loss, planned=planned, position=pos)
            out.append(row)
            walk(n.children, row)

    walk(tree, None)
    codes = [r.code for r in out]
    if len(set(codes)) != len(codes):
        raise ValueError(f"{enterprise}: reason codes are used twice in the tree")
    return out


def seed(s: Session, reasons: ReasonFile, enterprises: list[str]) -> int:
    """Add the codes each enterprise lacks; returns how many were added."""
    added = 0
    for ent in enterprises:
        have = set(s.scalars(select(Reason.code).where(Reason.enterprise == ent)))
        for row in flatten(reasons.tree(ent), ent):
            if row.code not in have:
                s.add(row)
                added += 1
    return added


def reasons_of(s: Session, enterprise: str) -> dict[str, Reason]:
    """Code -> reason of one enterprise."""
    return {r.code: r for r in s.scalars(select(Reason).where(Reason.enterprise == enterprise)
                                         .order_by(Reason.position, Reason.code))}


def to_json(r: Reason) -> dict[str, Any]:
    return {"code": r.code, "parent": r.parent, "name": {"en": r.name_en, "zh": r.name_zh},
            "loss": r.loss, "planned": r.planned}


def tree_json(rows: dict[str, Reason]) -> list[dict[str, Any]]:
    """The rows as a nested tree (children in their order)."""
    nodes = {code: {**to_json(r), "children": []} for code, r in rows.items()}
    roots = []
    for code, r in rows.items():
        parent = nodes.get(r.parent) if r.parent else None
        (parent["children"] if parent else roots).append(nodes[code])
    return roots


def upsert(s: Session, given: ReasonIn) -> Reason:
    """Add or change one reason; its parent must exist in the same enterprise."""
    if given.parent is not None and s.get(Reason, (given.enterprise, given.parent)) is None:
        raise KeyError(f"no reason {given.parent!r} in {given.enterprise!r}")
    row = s.get(Reason, (given.enterprise, given.code))
    if row is None:
        row = Reason(enterprise=given.enterprise, code=given.code, position=1_000)
        s.add(row)
    for k in ("parent", "name_en", "name_zh", "loss", "planned"):
        setattr(row, k, getattr(given, k))
    return row
