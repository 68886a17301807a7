"""OEE on the ISO 22400-2 time model, per equipment and rolled up over any subtree.

Per equipment the kernels turn the stored ``state`` series into time per state
and the ``part_count`` / ``reject_count`` counters into counts. A roll-up sums
times, counts and ideal production time over the equipment and recomputes the
ratios from the sums; ratios are never averaged. A ``MetricsQuery`` says what is
asked (window, staleness, loss thresholds, shift calendar); ``trend`` and
``timeline`` read the states through it the same way (``seen_states``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

import numpy as np

from shopfloor.contract import (
    SIGNAL_PART_COUNT,
    SIGNAL_REJECT_COUNT,
    SIGNAL_STATE,
    STATE_CODES,
    State,
)
from shopfloor.server import kernels
from shopfloor.server.calendar import CalendarConfig
from shopfloor.server.calendar import steps as calendar_steps
from shopfloor.server.config import OeeConfig
from shopfloor.server.rates import ratio
from shopfloor.server.registry import Asset
from shopfloor.storage import SampleReader, Series
from shopfloor.times import NS, seconds_ns

NEVER_STALE = 2**61
SIGNAL_PRODUCT = "product"  # product or program id, a string or a number
Steps = tuple[np.ndarray, np.ndarray]  # a calendar step function (calendar.steps)
_CODE_BY_NAME = {s.value: c for s, c in STATE_CODES.items()}
_OFFLINE = STATE_CODES[State.OFFLINE]


@dataclass(frozen=True)
class MetricsQuery:
    """What a metric is asked over: the window [t0, t1); how long a state sample holds
    (``stale_ns``); the small-stop threshold and the start-up window after setups
    (0 = none; the state series is read ``small_ns`` past t1 so that a stop starting
    in the window is classified by its whole length); the shift calendar, if any."""

    t0: int
    t1: int
    stale_ns: int
    small_ns: int = 0
    startup_ns: int = 0
    calendar: CalendarConfig | None = None

    @classmethod
    def of(cls, cfg: OeeConfig, t0: int, t1: int, small_stop_s: float = 0.0,
           startup_s: float = 0.0) -> MetricsQuery:
        """The query over [t0, t1) with the config's staleness and calendar."""
        return cls(t0, t1, seconds_ns(cfg.stale_after_s), seconds_ns(small_stop_s),
                   seconds_ns(startup_s), cfg.calendar)

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
    # loss breakdown (see losses.py): stop episodes (``kernels.stop_stats``, indexed by
    # kernels.SMALL_NS ... SETUP_COUNT) and rejects in start-up windows
    stops: np.ndarray = field(
        default_factory=lambda: np.zeros(kernels.N_STOP_STATS, dtype=np.int64))
    startup_reject: float = 0.0
    reject_ideal_s: float = 0.0
    startup_reject_ideal_s: float = 0.0
    equipment: int = 0
    without_data: list[str] = field(default_factory=list)
    without_cycle_time: list[str] = field(default_factory=list)

    def add(self, other: Totals) -> None:
        """Sum ``other`` into this, field by field (all of them are additive)."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def state_codes(series: Series) -> np.ndarray:
    """State names (strings) to kernel codes; anything unknown is OFFLINE."""
    if not series.text:
        return np.empty(0, np.int64)
    # a state series has a handful of distinct names: look up each once
    names, index = np.unique(np.array(series.text, dtype=object).astype(str),
                             return_inverse=True)
    table = np.array([_CODE_BY_NAME.get(n, _OFFLINE) for n in names], dtype=np.int64)
    return table[index.reshape(-1)]


def seen_states(states: Series, q: MetricsQuery) -> tuple[np.ndarray, np.ndarray, int]:
    """A state series as the kernels read it under ``q``: (ts, codes, stale_ns). With a
    calendar, staleness is made explicit, then the calendar laid over it."""
    ts, codes = states.ts, state_codes(states)
    if q.steps is None:
        return ts, codes, q.stale_ns
    ts, codes = kernels.materialize_stale(ts, codes, q.stale_ns)
    ts, codes = kernels.overlay(ts, codes, *q.steps)
    return ts, codes, NEVER_STALE


def equipment_totals(reader: SampleReader, asset: Asset, q: MetricsQuery) -> Totals:
    """Times, counts and loss quantities of one machine over [q.t0, q.t1)."""
    assert asset.device is not None and asset.equipment is not None
    t0, t1, small_ns, startup_ns = q.t0, q.t1, q.small_ns, q.startup_ns
    states = reader.read(asset.device, SIGNAL_STATE, t0, t1 + small_ns)
    parts = reader.read(asset.device, SIGNAL_PART_COUNT, t0, t1)
    rejects = reader.read(asset.device, SIGNAL_REJECT_COUNT, t0, t1)
    bits = asset.equipment.counter_bits
    out = Totals(equipment=1)
    ts, codes, stale_ns = seen_states(states, q)
    out.state_ns = kernels.state_durations(ts, codes, t0, t1, stale_ns)
    stats, windows = kernels.stop_stats(ts, codes, t0, t1, stale_ns, t1 + small_ns,
                                        small_ns, startup_ns)
    out.stops = stats
    out.total = kernels.counter_increase(parts.good_values(), bits)
    deltas = kernels.counter_deltas(rejects.good_values(), bits)
    out.reject = min(float(deltas.sum()), out.total)
    out.startup_reject = min(in_windows(rejects.ts, deltas, windows), out.reject)
    eq = asset.equipment
    if not eq.ideal_cycle_times_s:
        ict = eq.ideal_cycle_time_s
        if ict is None:
            out.without_cycle_time.append(asset.id)
        else:
            out.ideal_s = ict * out.total
            out.reject_ideal_s = ict * out.reject
            out.startup_reject_ideal_s = ict * out.startup_reject
    else:  # per product: each counter increase at the ICT of the product then running
        p_ict, r_ict = sample_cycle_times(reader, asset, t0, t1, parts.ts, rejects.ts)
        p_deltas = kernels.counter_deltas(parts.good_values(), bits)
        if np.isnan(p_ict[p_deltas > 0]).any() or np.isnan(r_ict[deltas > 0]).any():
            out.without_cycle_time.append(asset.id)
        out.ideal_s = float(np.nansum(p_ict * p_deltas))
        out.reject_ideal_s = float(np.nansum(r_ict * deltas))
        out.startup_reject_ideal_s = in_windows(rejects.ts, np.nan_to_num(r_ict * deltas),
                                                windows)
    if len(states.ts) == 0:
        out.without_data.append(asset.id)
    return out


def sample_cycle_times(reader: SampleReader, asset: Asset, t0: int, t1: int,
                       *ts: np.ndarray) -> list[np.ndarray]:
    """For each array of sample times in [t0, t1), the ideal cycle time in force at each:
    per product (``ideal_cycle_times_s`` and the ``product`` signal) when the equipment
    has product cycle times, else its ``ideal_cycle_time_s``; NaN where none is known."""
    assert asset.device is not None and asset.equipment is not None
    eq = asset.equipment
    if not eq.ideal_cycle_times_s:
        single = np.nan if eq.ideal_cycle_time_s is None else eq.ideal_cycle_time_s
        return [np.full(len(t), single) for t in ts]
    product = reader.read(asset.device, SIGNAL_PRODUCT, t0, t1)
    return [cycle_times(t, product, eq.ideal_cycle_times_s, eq.ideal_cycle_time_s)
            for t in ts]


def cycle_times(ts: np.ndarray, product: Series, by_product: dict[str, float],
                default: float | None) -> np.ndarray:
    """The ideal cycle time in force at each ``ts``: that of the latest ``product``
    sample at or before it, else ``default``; NaN where neither is known."""
    fallback = np.nan if default is None else default
    names = [t if t is not None else (f"{v:g}" if v == v else "")
             for t, v in zip(product.text, product.value, strict=True)]
    table = np.array([by_product.get(n, fallback) for n in names] + [fallback])
    i = np.searchsorted(product.ts, ts, side="right") - 1
    return table[np.where(i >= 0, i, len(product.text))]


def in_windows(ts: np.ndarray, values: np.ndarray, windows: np.ndarray) -> float:
    """Sum of ``values`` whose ``ts`` falls in any [start, end) row of ``windows``
    (rows ascending and disjoint)."""
    if len(windows) == 0 or len(ts) == 0:
        return 0.0
    i = np.searchsorted(windows[:, 0], ts, side="right") - 1
    inside = (i >= 0) & (ts < windows[np.maximum(i, 0), 1])
    return float(values[inside].sum())


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
    if totals.without_cycle_time:
        flags.append("ideal_cycle_time_missing")
    if secs["OFFLINE"] > 0:
        flags.append("data_gaps")
    return {
        "availability": a, "performance": p, "quality": q, "oee": oee,
        "times_s": secs,
        "planned_busy_time_s": pbt,
        "actual_production_time_s": apt,
        "ideal_production_time_s": totals.ideal_s,
        "counts": {"total": totals.total, "good": good, "reject": totals.reject},
        "equipment": totals.equipment,
        "equipment_without_data": totals.without_data,
        "flags": flags,
    }


def totals_of(reader: SampleReader, equipment: list[Asset], q: MetricsQuery) -> Totals:
    """The roll-up: the equipment's ``Totals`` summed."""
    totals = Totals()
    for asset in equipment:
        totals.add(equipment_totals(reader, asset, q))
    return totals


def compute(reader: SampleReader, equipment: list[Asset], q: MetricsQuery) -> dict[str, Any]:
    """The OEE report of the equipment's roll-up."""
    return report(totals_of(reader, equipment, q))
