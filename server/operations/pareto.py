"""Losses by reason (Pareto): the stop time in a window per effective reason, largest
first, each with its loss (one of the six big losses) and planned flag, and the stop
time no one has given a reason ("unclassified", availability loss). Their sum is the
window's IDLE + DOWN + SETUP time, as /oee counts it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shopfloor.server.operations.reasons import reasons_of
from shopfloor.server.operations.stops import Segment
from shopfloor.times import NS


def pareto(s: Session, segments: list[Segment], t0: int, t1: int) -> dict[str, Any]:
    """The Pareto of the segments' time within [t0, t1)."""
    trees: dict[str, dict] = {}
    rows: dict[str, dict[str, Any]] = {}
    unclassified_ns = unclassified_n = total_ns = 0
    by_loss: dict[str, float] = {}
    for seg in segments:
        ns = seg.overlap(t0, t1)
        if ns <= 0:
            continue
        total_ns += ns
        if seg.reason is None:
            unclassified_ns += ns
            unclassified_n += 1
            continue
        ent = seg.stop.machine.split("/", 1)[0]
        tree = trees.get(ent)
        if tree is None:
            tree = trees[ent] = reasons_of(s, ent)
        r = tree.get(seg.reason)
        row = rows.setdefault(seg.reason, {
            "reason": seg.reason,
            "name": {"en": r.name_en, "zh": r.name_zh} if r else None,
            "loss": r.loss if r else None, "planned": r.planned if r else None,
            "seconds": 0, "count": 0, "from_machine": 0})
        row["seconds"] += ns
        row["count"] += 1
        row["from_machine"] += seg.source == "machine"
        if r is not None:
            by_loss[r.loss] = by_loss.get(r.loss, 0) + ns / NS
    ranked = sorted(rows.values(), key=lambda r: (-r["seconds"], r["reason"]))
    for r in ranked:
        r["seconds"] /= NS
    return {"reasons": ranked,
            "unclassified": {"seconds": unclassified_ns / NS, "count": unclassified_n},
            "stop_s": total_ns / NS,
            "classified_share": (total_ns - unclassified_ns) / total_ns if total_ns else None,
            "by_loss_s": by_loss,
            "planned_s": sum(r["seconds"] for r in ranked if r["planned"]),
            "unplanned_s": sum(r["seconds"] for r in ranked if r["planned"] is False)}
