"""End-to-end completeness: which seqs of each edge agent are stored, and which are missing.

Per agent the stored seqs are kept as sorted, merged, inclusive ranges ``[(lo, hi), ...]``;
the first range's ``hi`` is the highest contiguous seq stored. The ranges live in the
embedded store (``SqliteStore.write(rows, seqs)`` merges them in the same transaction as
the samples), so they survive a restart and are shared by gateways on one store.

A gap is the space between two ranges (nothing below the first range is ever asked for:
that is history from before this store). ``GapTracker.due`` returns the gaps that stayed
open longer than ``timeout_s`` as replay requests; after ``max_attempts`` requests a gap is
given up (counted as lost, closed so that it is not asked for again).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from shopfloor.storage.ledger import Ranges


def gaps(ranges: Ranges) -> Ranges:
    """The missing seqs between the ranges, as inclusive ranges."""
    return [(a[1] + 1, b[0] - 1) for a, b in zip(ranges, ranges[1:], strict=False)]


@dataclass
class _Gap:
    since: float
    attempts: int = 0
    due: float = 0.0


class GapTracker:
    """Timers for the open gaps of every agent; fed with the ranges after each write."""

    def __init__(self, timeout_s: float, max_attempts: int, max_request_seqs: int = 1000):
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.max_request_seqs = max_request_seqs
        self.ranges: dict[str, Ranges] = {}
        self._open: dict[tuple[str, int], _Gap] = {}  # (agent, first missing seq) -> timer
        self.requests = 0  # replay requests issued
        self.gaps_seen = 0  # gaps opened
        self.lost = 0  # seqs given up on

    def update(self, agent: str, ranges: Ranges, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.ranges[agent] = ranges
        current = {(agent, lo) for lo, _ in gaps(ranges)}
        for key in [k for k in self._open if k[0] == agent and k not in current]:
            del self._open[key]  # filled (or reshaped: a new key times from now)
        for key in current - self._open.keys():
            self._open[key] = _Gap(now, due=now + self.timeout_s)
            self.gaps_seen += 1

    @property
    def open_gaps(self) -> int:
        return len(self._open)

    def missing(self) -> int:
        return sum(hi - lo + 1 for r in self.ranges.values() for lo, hi in gaps(r))

    def due(self, now: float | None = None) -> tuple[dict[str, Ranges], dict[str, Ranges]]:
        """``(requests, give_up)``: per agent, the gaps to ask for and those to give up."""
        now = time.monotonic() if now is None else now
        ask: dict[str, Ranges] = {}
        drop: dict[str, Ranges] = {}
        for agent, ranges in self.ranges.items():
            for lo, hi in gaps(ranges):
                g = self._open.get((agent, lo))
                if g is None or now < g.due:
                    continue
                if g.attempts >= self.max_attempts:
                    drop.setdefault(agent, []).append((lo, hi))
                    self.lost += hi - lo + 1
                    del self._open[(agent, lo)]
                    continue
                g.attempts += 1
                g.due = now + self.timeout_s * 2 ** min(g.attempts, 6)  # back off
                ask.setdefault(agent, []).append((lo, min(hi, lo + self.max_request_seqs - 1)))
                self.requests += 1
        return ask, drop
