"""Splitting a span into whole buckets and raw edges.

``decompose(a, b, minute_from)`` covers [a, b) with the fewest whole buckets, coarsest
first (days, then hours, then minutes at the edges of the hours; minutes only from
``minute_from`` on, where they are kept), and returns what no whole bucket covers (edges
shorter than a minute, or an hour before ``minute_from``) to be computed from raw
samples. Buckets are aligned to multiples of their resolution (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .buckets import RESOLUTIONS

Span = tuple[int, int]


@dataclass
class Plan:
    buckets: list[tuple[int, int, int]] = field(default_factory=list)  # (res, start, end)
    raw: list[Span] = field(default_factory=list)


def decompose(a: int, b: int, minute_from: int | None = None) -> Plan:
    plan = Plan()
    cut = a if minute_from is None else min(max(minute_from, a), b)
    _split(a, cut, RESOLUTIONS[:-1], plan)  # before minute_from: days and hours only
    _split(cut, b, RESOLUTIONS, plan)
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
