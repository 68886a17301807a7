"""Machine dynamics: a deterministic, seeded event stream, independent of any I/O.

Time ``t`` is in seconds since the timeline clock started (t0). The timeline is
``lead_in_s`` of NO_SHIFT, ``duration_s`` of shift, then NO_SHIFT for ever (the
runner stops after ``lead_out_s``, or when told). In the shift PRODUCING
alternates with a stop state; the first four stops are a seeded shuffle of all
four stop states, later ones a seeded weighted choice. A part completes after
every ``ideal_cycle_time_s * speed_factor`` seconds of PRODUCING (progress
survives stops) and is a reject with probability ``reject_rate``. The process
value (spindle load %) is refreshed every ``VALUE_PERIOD_S``.

With ``products`` the machine starts on the first product and changes over to the
next (cyclically) when a SETUP segment ends: from then on a part takes that product's
``ideal_cycle_time_s * speed_factor``, and progress towards a part restarts from zero
(the new product's first part is a fresh one). Events carry the product being made.

With ``stop_reasons`` each stop of a state that has reasons is given one (drawn from a
stream of its own, so the states and parts of a seeded run do not change); events carry
the PLC code being served (0 while producing or when the stop has none).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import IntEnum

from shopfloor.contract import State

from .codes import STOP_STATES
from .scenario import MachineSpec, StopReason, Timeline

VALUE_PERIOD_S = 0.5
# Relative odds of each stop state after the first four stops.
STOP_WEIGHTS: dict[State, float] = {
    State.IDLE: 0.35, State.DOWN: 0.25, State.SETUP: 0.15, State.PLANNED_STOP: 0.25,
}


class Kind(IntEnum):
    """Event kinds; at equal times they happen in this order."""

    STATE = 0
    PART = 1
    VALUE = 2


@dataclass(frozen=True, slots=True)
class Event:
    """What changed at ``t``, with the machine's full snapshot after the change."""

    t: float
    kind: Kind
    state: State
    part_count: int
    reject_count: int
    spindle_load: float
    reject: bool = False  # for PART events: this part is a reject
    product: str | None = None  # the product being made (None: the machine has none)
    stop_reason: int = 0  # the PLC's reason code being served (0: none)


@dataclass(frozen=True, slots=True)
class Segment:
    state: State
    start: float
    end: float  # math.inf for the final NO_SHIFT
    reason: StopReason | None = None  # the stop's reason, on machines that give one


class MachineModel:
    """The seeded dynamics of one machine in one scenario run."""

    def __init__(self, spec: MachineSpec, timeline: Timeline, seed: int):
        self.spec = spec
        self.timeline = timeline
        self.seed = seed
        ict = spec.products[0].ideal_cycle_time_s if spec.products else spec.ideal_cycle_time_s
        self.cycle_s = ict * spec.speed_factor  # the first product's

    def _rng(self, stream: str) -> random.Random:
        # str seeds are hashed with SHA-512: stable across processes and runs.
        return random.Random(f"{self.seed}:{self.spec.id}:{stream}")

    @property
    def shift_start(self) -> float:
        return self.timeline.lead_in_s

    @property
    def shift_end(self) -> float:
        return self.timeline.lead_in_s + self.timeline.duration_s

    def segments(self) -> Iterator[Segment]:
        """State intervals in time order; the last one (NO_SHIFT) never ends."""
        rng, reasons = self._rng("states"), self._rng("reasons")
        if self.shift_start > 0:
            yield Segment(State.NO_SHIFT, 0.0, self.shift_start)
        first_stops = list(STOP_STATES)
        rng.shuffle(first_stops)
        weights = [STOP_WEIGHTS[s] for s in STOP_STATES]
        t, state, n_stops = self.shift_start, State.PRODUCING, 0
        while t < self.shift_end:
            lo, hi = self.spec.durations_s[state]
            end = min(t + rng.uniform(lo, hi), self.shift_end)
            given = self.spec.stop_reasons.of(state) if self.spec.stop_reasons else []
            yield Segment(state, t, end, reasons.choice(given) if given else None)
            t = end
            if state is State.PRODUCING:
                if n_stops < len(first_stops):
                    state = first_stops[n_stops]
                else:
                    state = rng.choices(STOP_STATES, weights)[0]
                n_stops += 1
            else:
                state = State.PRODUCING
        yield Segment(State.NO_SHIFT, self.shift_end, math.inf)

    def _spindle(self, rng: random.Random, state: State) -> float:
        if state is State.PRODUCING:
            load = rng.gauss(70.0, 4.0)
        elif state is State.NO_SHIFT:
            load = 0.0
        else:
            load = rng.gauss(5.0, 1.0)
        return round(min(max(load, 0.0), 100.0), 2)

    def events(self) -> Iterator[Event]:
        """Every change in time order: state changes, parts and process values.

        With ``counter_reset_at_s`` the served counters restart from zero at the first
        event at or after that time (a PLC reset); parts and the truth are unchanged.
        """
        reset_at = self.spec.counter_reset_at_s
        base: tuple[int, int] | None = None
        prev = (0, 0)
        for ev in self._events():
            if reset_at is not None and base is None and ev.t >= reset_at:
                base = prev
            prev = (ev.part_count, ev.reject_count)
            if base is not None:
                ev = replace(ev, part_count=ev.part_count - base[0],
                             reject_count=ev.reject_count - base[1])
            yield ev

    def _events(self) -> Iterator[Event]:
        parts_rng, value_rng = self._rng("parts"), self._rng("values")
        parts = rejects = 0
        progress = 0.0  # seconds of PRODUCING towards the next part
        load = 0.0
        tick = 1  # next process-value tick index (tick 0 coincides with the first state)
        products, k, changeover = self.spec.products, 0, False
        product = products[0].id if products else None
        cycle = self.cycle_s
        for seg in self.segments():
            if changeover:  # the SETUP before this segment changed the product over
                k = (k + 1) % len(products)
                product, progress = products[k].id, 0.0
                cycle = products[k].ideal_cycle_time_s * self.spec.speed_factor
            changeover = bool(products) and seg.state is State.SETUP
            load = self._spindle(value_rng, seg.state)
            code = seg.reason.code if seg.reason else 0
            yield Event(seg.start, Kind.STATE, seg.state, parts, rejects, load, product=product,
                        stop_reason=code)
            pending: list[tuple[float, Kind]] = []
            if seg.state is State.PRODUCING:
                # Parts complete strictly inside [start, end); a part due exactly at
                # the end completes when PRODUCING resumes.
                first = seg.start + (cycle - progress)
                n = 0
                while first + n * cycle < seg.end:
                    pending.append((first + n * cycle, Kind.PART))
                    n += 1
                if n:
                    progress = seg.end - pending[-1][0]
                else:
                    progress += seg.end - seg.start
                progress = min(progress, cycle)
            while tick * VALUE_PERIOD_S <= seg.start:
                tick += 1
            for t, kind in heapq.merge(pending, self._ticks(tick, seg.end)):
                if kind is Kind.PART:
                    reject = parts_rng.random() < self.spec.reject_rate
                    parts += 1
                    rejects += reject
                    yield Event(t, kind, seg.state, parts, rejects, load, reject, product,
                                code)
                else:
                    tick += 1
                    load = self._spindle(value_rng, seg.state)
                    yield Event(t, kind, seg.state, parts, rejects, load, product=product,
                                stop_reason=code)

    @staticmethod
    def _ticks(first: int, end: float) -> Iterator[tuple[float, Kind]]:
        k = first
        while k * VALUE_PERIOD_S < end:
            yield k * VALUE_PERIOD_S, Kind.VALUE
            k += 1

    def simulate(self, until_s: float) -> list[Event]:
        """All events with ``t < until_s`` (for tests and offline use)."""
        out = []
        for ev in self.events():
            if ev.t >= until_s:
                break
            out.append(ev)
        return out

