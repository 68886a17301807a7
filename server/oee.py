"""OEE on the ISO 22400-2 time model, per equipment and rolled up over any subtree.

Per equipment the kernels turn the stored ``state`` series into time per state
and the ``part_count`` / ``reject_count`` counters into counts. A roll-up sums
times, counts and ideal production time over the equipment and recomputes the
ratios from the sums; ratios are never averaged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shopfloor.contract import (
    SIGNAL_PART_COUNT,
    SIGNAL_REJECT_COUNT,
    SIGNAL_STATE,
    STATE_CODES,
    State,
)
from shopfloor.gateway.store import SampleReader, Series
from shopfloor.server import kernels
from shopfloor.server.registry import Asset

NS = 1_000_000_000
_CODE_BY_NAME = {s.value: c for s, c in STATE_CODES.items()}
_OFFLINE = STATE_CODES[State.OFFLINE]


@dataclass
class Totals:
    """Additive quantities behind the OEE ratios."""

    state_ns: np.ndarray = field(
        default_factory=lambda: np.zeros(kernels.N_STATES, dtype=np.int64))
    total: float = 0.0
    reject: float = 0.0
    ideal_s: float = 0.0
    equipment: int = 0
    without_data: list[str] = field(default_factory=list)
    without_cycle_time: list[str] = field(default_factory=list)

    def add(self, other: Totals) -> None:
        self.state_ns += other.state_ns
        self.total += other.total
        self.reject += other.reject
        self.ideal_s += other.ideal_s
        self.equipment += other.equipment
        self.without_data += other.without_data
        self.without_cycle_time += other.without_cycle_time


def state_codes(series: Series) -> np.ndarray:
    """State names (strings) to kernel codes; anything unknown is OFFLINE."""
    return np.fromiter((_CODE_BY_NAME.get(t or "", _OFFLINE) for t in series.text),
                       dtype=np.int64, count=len(series.text))


def equipment_totals(reader: SampleReader, asset: Asset, t0: int, t1: int,
                     stale_ns: int) -> Totals:
    assert asset.device is not None and asset.equipment is not None
    states = reader.read(asset.device, SIGNAL_STATE, t0, t1)
    parts = reader.read(asset.device, SIGNAL_PART_COUNT, t0, t1)
    rejects = reader.read(asset.device, SIGNAL_REJECT_COUNT, t0, t1)
    bits = asset.equipment.counter_bits
    out = Totals(equipment=1)
    out.state_ns = kernels.state_durations(states.ts, state_codes(states), t0, t1, stale_ns)
    out.total = kernels.counter_increase(parts.value, bits)
    out.reject = min(kernels.counter_increase(rejects.value, bits), out.total)
    ict = asset.equipment.ideal_cycle_time_s
    if ict is None:
        out.without_cycle_time.append(asset.id)
    else:
        out.ideal_s = ict * out.total
    if len(states.ts) == 0:
        out.without_data.append(asset.id)
    return out


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def report(totals: Totals) -> dict[str, Any]:
    """The ratios and the times and counts behind them."""
    secs = {s.value: float(totals.state_ns[STATE_CODES[s]]) / NS for s in State}
    window_s = sum(secs.values())
    pbt = window_s - secs["PLANNED_STOP"] - secs["NO_SHIFT"] - secs["OFFLINE"]
    apt = secs["PRODUCING"]
    good = totals.total - totals.reject
    a = _ratio(apt, pbt)
    p = _ratio(totals.ideal_s, apt)
    q = _ratio(good, totals.total)
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


def compute(reader: SampleReader, equipment: list[Asset], t0: int, t1: int,
            stale_ns: int) -> dict[str, Any]:
    totals = Totals()
    for asset in equipment:
        totals.add(equipment_totals(reader, asset, t0, t1, stale_ns))
    return report(totals)
