"""Splitting a span into whole buckets and raw edges.

``decompose(a, b)`` covers [a, b) with the fewest whole buckets, coarsest first (days,
then hours, then minutes at the edges of the hours), and returns what no whole bucket
covers (at most one piece before and one after, each shorter than a minute) to be
computed from raw samples. Buckets are aligned to multiples of their resolution (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .buckets import RESOLUTIONS

Span = tuple[int, int]


@dataclass
class Plan:
    buckets: list[tuple[int, int, int]] = field(default_factory=list)  # (res, start, end)
    raw: list[Span] = field(default_factory=list)


def decompose(a: int, b: int, resolutions: tuple[int, ...] = RESOLUTIONS) -> Plan:
    plan = Plan()
    _split(a, b, resolutions, plan)
    plan.buckets.sort()
    plan.raw.sort()
    return plan


def _split(a: int, b: int, resolutions: tuple[int, ...], plan: Plan) -> None:
    if b <= a:
        return
    if not resolutions:
        plan.raw.append((a, b))
        return
    res, finer = resolutions[0], resolutions[1:]
    first = -(-a // res) * res  # the first boundary at or after a
    last = b // res * res
    if first >= last:
        _split(a, b, finer, plan)
        return
    plan.buckets.append((res, first, last))
    _split(a, first, finer, plan)
    _split(last, b, finer, plan)


def floor_to(t: int, res: int) -> int:
    return t // res * res
