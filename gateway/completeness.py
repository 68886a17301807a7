"""End-to-end completeness: which seqs of each edge agent are stored, and which are missing.

Per agent the stored seqs are kept as sorted, merged, inclusive ranges ``[(lo, hi), ...]``;
the first range's ``hi`` is the highest contiguous seq stored. The ranges live in the
seq ledger (``shopfloor/storage/ledger.py``): the embedded store, which merges them in the
same transaction as the samples, so they survive a restart and are shared by gateways on
one store; else in memory.

A gap is the space between two ranges (nothing below the first range is ever asked for:
that is history from before this store). ``GapTracker.due`` returns the gaps that stayed
open longer than ``timeout_s`` as replay requests; after ``max_attempts`` requests a gap is
given up (counted as lost, closed so that it is not asked for again). ``Completeness`` is
the gateway's side: fed with the ledger's ranges after every write, it asks agents (on
their command topic) for the gaps that are due and closes in the ledger those given up.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from shopfloor.commands import agent_cmd_topic, replay_request
from shopfloor.storage.ledger import Ranges, SeqLedger

from .config import CompletenessConfig

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0  # how often the writer thread looks for due gaps


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


class Completeness:
    """The gap tracker of a gateway, fed from its seq ledger (on the writer thread)."""

    def __init__(self, cfg: CompletenessConfig):
        self.cfg = cfg
        self.tracker = GapTracker(cfg.timeout_s, cfg.max_attempts, cfg.max_request_seqs)
        self._lock = threading.Lock()  # the tracker's counters are read by other threads
        self._next_check: float | None = None  # the first check: a second after the first call

    def seen(self, ranges: dict[str, Ranges]) -> None:
        """The ledger's ranges of these agents, as it returned or read them."""
        with self._lock:
            for agent, r in ranges.items():
                self.tracker.update(agent, r)

    def check(self, ledger: SeqLedger, client: mqtt.Client | None) -> None:
        """Once a second (when enabled): ask agents to replay the gaps that stayed open,
        close in the ledger those given up on."""
        if not self.cfg.enabled:
            return
        if self._next_check is None:
            self._next_check = time.monotonic() + CHECK_INTERVAL_S
        if time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + CHECK_INTERVAL_S
        try:
            self.seen(ledger.seq_ranges())  # the ledger is the truth (gateways may share it)
        except Exception as exc:  # noqa: BLE001 - retried at the next check
            log.warning("reading seq ranges failed: %s", exc)
            return
        with self._lock:
            ask, drop = self.tracker.due()
        for agent, ranges in ask.items():
            log.warning("agent %s: seqs %s missing; asking for a replay", agent, ranges[:10])
            if client is not None:
                client.publish(agent_cmd_topic(agent), replay_request(ranges), qos=1)
        if drop:
            log.error("giving up on seqs %s: not replayed after %d requests",
                      drop, self.cfg.max_attempts)
            with contextlib.suppress(Exception):
                self.seen(ledger.write([], closed=drop))

    def counts(self) -> dict[str, int]:
        """``GatewayStats`` fields: gaps_open, gaps_seen, replay_requests, seqs_lost."""
        with self._lock:
            t = self.tracker
            return {"gaps_open": t.open_gaps, "gaps_seen": t.gaps_seen,
                    "replay_requests": t.requests, "seqs_lost": t.lost}
