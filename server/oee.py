"""OEE on the ISO 22400-2 time model, per equipment and rolled up over any subtree.

Every metric reads each machine's additive quantities over its window (time per state,
stop episodes, counts and ideal times: ``rollup.quantities``), from roll-up buckets where
they hold and from raw samples elsewhere (``rollup.source.QuantitySource``), the same
either way. A roll-up sums them over the equipment and recomputes the ratios; ratios are
never averaged. A ``MetricsQuery`` says what is asked (window, staleness, loss
thresholds, shift calendar); ``timeline`` reads the states through it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

import numpy as np

from shopfloor.contract import STATE_CODES, State
from shopfloor.server import kernels
from shopfloor.server.calendar import CalendarConfig
from shopfloor.server.calendar import steps as calendar_steps
from shopfloor.server.clock import clock_skew_by_window
from shopfloor.server.config import OeeConfig
from shopfloor.server.rates import ratio
from shopfloor.server.registry import Asset
from shopfloor.server.rollup.quantities import STOP_FIELDS, Definition, Quantities
from shopfloor.server.rollup.source import QuantitySource
from shopfloor.times import NS, seconds_ns

Steps = tuple[np.ndarray, np.ndarray]  # a calendar step function (calendar.steps)


@dataclass(frozen=True)
class MetricsQuery:
    """What a metric is asked over: the window [t0, t1); how long a state sample holds
    (``stale_ns``); the small-stop threshold and the start-up window after setups
    (0 = none); the shift calendar, if any. Its ``definition`` is what the quantities
    depend on: roll-ups serve a query of the same definition."""

    t0: int
    t1: int
    stale_ns: int
    small_ns: int = 0
    startup_ns: int = 0
    calendar: CalendarConfig | None = None

    @classmethod
    def of(cls, cfg: OeeConfig, t0: int, t1: int, small_stop_s: float | None = None,
           startup_s: float | None = None) -> MetricsQuery:
        """The query over [t0, t1) with the config's staleness, calendar and (unless given)
        loss thresholds."""
        small = cfg.small_stop_s if small_stop_s is None else small_stop_s
        startup = cfg.startup_s if startup_s is None else startup_s
        return cls(t0, t1, seconds_ns(cfg.stale_after_s), seconds_ns(small),
                   seconds_ns(startup), cfg.calendar)

    @property
    def definition(self) -> Definition:
        return Definition(self.stale_ns, self.small_ns, self.startup_ns, self.calendar)

    @cached_property
    def steps(self) -> Steps | None:
        """The calendar over [t0, t1 + small_ns) as a step function (computed once)."""
        if self.calendar is None:
            return None
        return calendar_steps(self.calendar, self.t0, self.t1 + self.small_ns)


@dataclass
class Totals:
    """Additive quantities behind the OEE ratios."""

    state_ns: np.ndarray = field(
        default_factory=lambda: np.zeros(kernels.N_STATES, dtype=np.int64))
    total: float = 0.0
    reject: float = 0.0
    ideal_s: float = 0.0
    # loss breakdown (see losses.py): stop episodes (indexed by kernels.SMALL_NS ...
    # SETUP_COUNT) and rejects in start-up windows
    stops: np.ndarray = field(
        default_factory=lambda: np.zeros(kernels.N_STOP_STATS, dtype=np.int64))
    startup_reject: float = 0.0
    reject_ideal_s: float = 0.0
    startup_reject_ideal_s: float = 0.0
    parts_without_ict: float = 0.0  # counted while no ideal cycle time was known
    equipment: int = 0
    without_data: list[str] = field(default_factory=list)
    without_cycle_time: list[str] = field(default_factory=list)
    clock_skew: list[str] = field(default_factory=list)  # an edge clock was off (clock.py)

    @classmethod
    def of(cls, q: Quantities, row: int = 0, **kw: Any) -> Totals:
        """From one row of quantities; rejects are capped at the parts (a reject counted
        just before its part in a window's last instant)."""
        total = float(q["total"][row])
        reject = min(float(q["reject"][row]), total)
        return cls(state_ns=q.state_ns[row].copy(), total=total, reject=reject,
                   ideal_s=float(q["ideal_s"][row]),
                   stops=np.array([q[f][row] for f in STOP_FIELDS], dtype=np.int64),
                   startup_reject=min(float(q["startup_reject"][row]), reject),
                   reject_ideal_s=float(q["reject_ideal_s"][row]),
                   startup_reject_ideal_s=float(q["startup_reject_ideal_s"][row]),
                   parts_without_ict=float(q["parts_without_ict"][row]), **kw)

    def add(self, other: Totals) -> None:
        """Sum ``other`` into this, field by field (all of them are additive)."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def lacks_cycle_time(asset: Asset) -> bool:
    """The registry gives the machine no ideal cycle time at all."""
    eq = asset.equipment
    assert eq is not None
    return eq.ideal_cycle_time_s is None and not eq.ideal_cycle_times_s


def totals_of(source: QuantitySource, equipment: list[Asset], q: MetricsQuery) -> Totals:
    """The roll-up: each machine's ``Totals`` over the window, summed."""
    return totals_by(source, {"": equipment}, q)[""]


def totals_by(source: QuantitySource, groups: dict[str, list[Asset]], q: MetricsQuery
              ) -> dict[str, Totals]:
    """The roll-up of each group of machines (e.g. the enterprises of a cluster), from one
    read of every machine's quantities."""
    everyone = list({a.id: a for g in groups.values() for a in g}.values())
    rows = source.per_device(everyone, q.definition, q.t0, q.t1)
    skewed = set(clock_skew_by_window(source.reader, everyone, [q.t0], [q.t1])[0])
    out = {}
    for name, equipment in groups.items():
        totals = Totals()
        for asset in equipment:
            row = rows.get(asset.id, Quantities.zeros())
            seen = bool(row["state_seen"][0])
            totals.add(Totals.of(row, equipment=1,
                                 without_data=[] if seen else [asset.id],
                                 without_cycle_time=[asset.id] if lacks_cycle_time(asset)
                                 or row["parts_without_ict"][0] > 0 else [],
                                 clock_skew=[asset.id] if asset.id in skewed else []))
        out[name] = totals
    return out


def report(totals: Totals) -> dict[str, Any]:
    """The ratios and the times and counts behind them."""
    secs = {s.value: float(totals.state_ns[STATE_CODES[s]]) / NS for s in State}
    ns = totals.state_ns
    # in integer ns, so APT <= PBT holds exactly (no float round-off above 100 %)
    pbt = float(int(ns.sum()) - sum(int(ns[STATE_CODES[s]]) for s in (
        State.PLANNED_STOP, State.NO_SHIFT, State.OFFLINE))) / NS
    apt = secs["PRODUCING"]
    good = totals.total - totals.reject
    a = ratio(apt, pbt)
    p = ratio(totals.ideal_s, apt)
    q = ratio(good, totals.total)
    oee = a * p * q if a is not None and p is not None and q is not None else None
    flags = []
    if p is not None and p > 1.0:
        flags.append("performance_above_100_percent")
    if totals.without_cycle_time or totals.parts_without_ict > 0:
        flags.append("ideal_cycle_time_missing")
    if secs["OFFLINE"] > 0:
        flags.append("data_gaps")
    if totals.clock_skew:  # samples stamped by a clock that was off: times misplaced
        flags.append("clock_skew")
    return {
        "availability": a, "performance": p, "quality": q, "oee": oee,
        "times_s": secs,
        "planned_busy_time_s": pbt,
        "actual_production_time_s": apt,
        "ideal_production_time_s": totals.ideal_s,
        "counts": {"total": totals.total, "good": good, "reject": totals.reject},
        "equipment": totals.equipment,
        "equipment_without_data": totals.without_data,
        "equipment_with_clock_skew": totals.clock_skew,
        "flags": flags,
    }


def compute(source: QuantitySource, equipment: list[Asset], q: MetricsQuery
            ) -> dict[str, Any]:
    """The OEE report of the equipment's roll-up."""
    return report(totals_of(source, equipment, q))
