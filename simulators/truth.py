"""Reading the ground-truth log and computing the true OEE of any window.

Definitions (ARCHITECTURE.md, ISO 22400-2), per window [start_ns, end_ns):
PBT = window - PLANNED_STOP - NO_SHIFT (- OFFLINE: window time the log does not
cover, e.g. before t0 or after the run, and a device's network outages: the machine
ran on, but no data could be read, so that time is OFFLINE while the parts made in it
still count); A = PRODUCING / PBT;
P = ideal production time (the sum of each part's ICT: its product's, or the
machine's) / PRODUCING; Q = good / total; OEE = A x P x Q. Several machines:
times, counts and ideal production time are summed first, then the ratios are
taken (never an average of ratios). A ratio with a zero denominator is None.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopfloor.contract import State

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Interval:
    state: State
    start: int  # ns
    end: int  # ns, exclusive
    reason: str | None = None  # the reason code the machine gave this stop, if any


# the states whose episodes are stops (availability loss: IDLE, DOWN, SETUP)
STOP_STATES = (State.IDLE, State.DOWN, State.SETUP)


@dataclass
class MachineTruth:
    asset_id: str
    ideal_cycle_time_s: float
    info: dict[str, Any]
    intervals: list[Interval] = field(default_factory=list)  # sorted by start
    part_ts: list[int] = field(default_factory=list)  # sorted
    reject_ts: list[int] = field(default_factory=list)  # sorted
    # each part's / reject's ideal cycle time (s), parallel to part_ts / reject_ts; empty
    # when every part is at ``ideal_cycle_time_s`` (a machine without products)
    part_ict: list[float] = field(default_factory=list)
    reject_ict: list[float] = field(default_factory=list)
    outages: list[tuple[int, int]] = field(default_factory=list)  # [start, end) ns

    def state_at(self, ts_ns: int) -> State | None:
        """The state served at ``ts_ns``, None outside the logged intervals."""
        i = bisect.bisect_right(self.intervals, ts_ns, key=lambda iv: iv.start) - 1
        if i >= 0 and ts_ns < self.intervals[i].end:
            return self.intervals[i].state
        return None

    def counters_at(self, ts_ns: int) -> tuple[int, int]:
        """Cumulative (part_count, reject_count) served at ``ts_ns`` (parts at ts <= ts_ns)."""
        return (bisect.bisect_right(self.part_ts, ts_ns),
                bisect.bisect_right(self.reject_ts, ts_ns))

    def count(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        """(total, reject) parts with start_ns <= ts < end_ns."""
        def between(ts: list[int]) -> int:
            return bisect.bisect_left(ts, end_ns) - bisect.bisect_left(ts, start_ns)

        return between(self.part_ts), between(self.reject_ts)

    def ideal_s(self, start_ns: int, end_ns: int, rejects: bool = False) -> float:
        """Ideal production time (s) of the parts (or rejects) with start_ns <= ts < end_ns:
        the sum of each one's ideal cycle time."""
        ts, icts = (self.reject_ts, self.reject_ict) if rejects else (self.part_ts, self.part_ict)
        i, j = bisect.bisect_left(ts, start_ns), bisect.bisect_left(ts, end_ns)
        return math.fsum(icts[i:j]) if icts else self.ideal_cycle_time_s * (j - i)

    def times_ns(self, start_ns: int, end_ns: int) -> dict[State, int]:
        """Nanoseconds per state within the window; time no interval covers is OFFLINE."""
        out: dict[State, int] = defaultdict(int)
        covered = 0
        for iv in self.intervals:
            overlap = min(iv.end, end_ns) - max(iv.start, start_ns)
            if overlap > 0:
                out[iv.state] += overlap
                covered += overlap
        out[State.OFFLINE] += max(end_ns - start_ns, 0) - covered
        return out


    def with_calendar(self, shifts: list[tuple[int, int, list[tuple[int, int]]]]
                      ) -> MachineTruth:
        """The same machine seen through a shift calendar: time outside the
        ``(start, end, breaks)`` shifts is NO_SHIFT, time in breaks PLANNED_STOP."""
        cuts: list[tuple[int, int, State | None]] = []  # (start, end, override)
        edges = sorted({iv.start for iv in self.intervals} | {iv.end for iv in self.intervals}
                       | {t for s, e, bs in shifts for t in (s, e)}
                       | {t for _, _, bs in shifts for b in bs for t in b})
        for a, b in zip(edges, edges[1:], strict=False):
            inside = [(s, e, bs) for s, e, bs in shifts if s <= a < e]
            if not inside:
                cuts.append((a, b, State.NO_SHIFT))
            elif any(bs0 <= a < bs1 for bs0, bs1 in inside[0][2]):
                cuts.append((a, b, State.PLANNED_STOP))
            else:
                cuts.append((a, b, None))
        out = MachineTruth(self.asset_id, self.ideal_cycle_time_s, self.info,
                           part_ts=self.part_ts, reject_ts=self.reject_ts,
                           part_ict=self.part_ict, reject_ict=self.reject_ict,
                           outages=self.outages)
        for a, b, override in cuts:
            state = override or self.state_at(a) or State.OFFLINE  # unlogged: OFFLINE
            last = out.intervals[-1] if out.intervals else None
            if last and last.state is state and last.end == a:
                out.intervals[-1] = Interval(state, last.start, b)
            else:
                out.intervals.append(Interval(state, a, b))
        return out

    def episodes(self) -> list[Interval]:
        """Maximal runs of one state; time between logged intervals is OFFLINE."""
        out: list[Interval] = []
        for iv in self.intervals:
            if out and out[-1].end < iv.start:
                out.append(Interval(State.OFFLINE, out[-1].end, iv.start))
            if out and out[-1].state is iv.state and out[-1].end == iv.start:
                out[-1] = Interval(iv.state, out[-1].start, iv.end,
                                   out[-1].reason or iv.reason)
            else:
                out.append(iv)
        return out

    def loss_quantities(self, start_ns: int, end_ns: int, small_ns: int,
                        startup_ns: int) -> dict[str, float]:
        """Stop episodes and rejects of one machine in the window (METRICS.md): small
        stops are IDLE/DOWN right after PRODUCING and shorter than ``small_ns``; other
        DOWN is failure; rejects within ``startup_ns`` after a SETUP are start-up rejects.
        Times are clipped to the window, counts are of episodes starting in it."""
        q: dict[str, float] = dict.fromkeys((
            "small_ns", "small_count", "failure_ns", "failure_count", "setup_count",
            "startup_reject", "startup_reject_ideal_s"), 0)
        eps = self.episodes()
        for j, ep in enumerate(eps):
            prev = eps[j - 1].state if j else None
            ov = max(0, min(ep.end, end_ns) - max(ep.start, start_ns))
            starts_in = int(start_ns <= ep.start < end_ns)
            if (ep.state in (State.IDLE, State.DOWN) and prev is State.PRODUCING
                    and ep.end - ep.start < small_ns):
                q["small_ns"] += ov
                q["small_count"] += starts_in
            elif ep.state is State.DOWN:
                q["failure_ns"] += ov
                q["failure_count"] += starts_in
            q["setup_count"] += starts_in if ep.state is State.SETUP else 0
            if ep.state is State.PRODUCING and prev is State.SETUP and startup_ns > 0:
                lo = max(ep.start, start_ns)
                hi = min(ep.start + startup_ns, ep.end, end_ns)
                if hi > lo:
                    q["startup_reject"] += (bisect.bisect_left(self.reject_ts, hi)
                                            - bisect.bisect_left(self.reject_ts, lo))
                    q["startup_reject_ideal_s"] += self.ideal_s(lo, hi, rejects=True)
        return q


def cut_outages(intervals: list[Interval], outages: list[tuple[int, int]]) -> list[Interval]:
    """The state intervals (sorted) with each outage [start, end) made OFFLINE."""
    out = intervals
    for o0, o1 in sorted(outages):
        cut: list[Interval] = []
        for iv in out:
            if iv.end <= o0 or iv.start >= o1:
                cut.append(iv)
                continue
            if iv.start < o0:
                cut.append(Interval(iv.state, iv.start, o0, iv.reason))
            if iv.end > o1:
                cut.append(Interval(iv.state, o1, iv.end, iv.reason))
        cut.append(Interval(State.OFFLINE, o0, o1))
        out = sorted(cut, key=lambda iv: iv.start)
    return out


class Truth:
    """A loaded ground-truth log."""

    def __init__(self, header: dict[str, Any], machines: dict[str, MachineTruth]):
        self.header = header
        self.machines = machines

    @property
    def t0(self) -> int:
        return int(self.header["t0"])

    def shift_window(self) -> tuple[int, int]:
        """(shift_start, shift_end) in ns."""
        return int(self.header["shift_start"]), int(self.header["shift_end"])

    def run_window(self) -> tuple[int, int]:
        """(t0, end of the last logged interval) in ns."""
        ends = [iv.end for m in self.machines.values() for iv in m.intervals]
        return self.t0, max(ends, default=self.t0)

    def machine(self, asset_id: str) -> MachineTruth:
        try:
            return self.machines[asset_id]
        except KeyError:
            raise KeyError(f"{asset_id!r} is not in the truth log "
                           f"(machines: {', '.join(self.machines)})") from None

    def oee(self, asset_ids: list[str] | str, start_ns: int, end_ns: int) -> dict[str, Any]:
        """True OEE and its parts over [start_ns, end_ns), summed over ``asset_ids``."""
        ids = [asset_ids] if isinstance(asset_ids, str) else list(asset_ids)
        times: dict[State, int] = {s: 0 for s in State}
        total = reject = 0
        ideal_s = 0.0
        for asset in ids:
            m = self.machine(asset)
            for state, ns in m.times_ns(start_ns, end_ns).items():
                times[state] += ns
            n, r = m.count(start_ns, end_ns)
            total += n
            reject += r
            ideal_s += m.ideal_s(start_ns, end_ns)
        window_ns = max(end_ns - start_ns, 0) * len(ids)
        pbt_ns = (window_ns - times[State.PLANNED_STOP] - times[State.NO_SHIFT]
                  - times[State.OFFLINE])
        apt_s = times[State.PRODUCING] / NS
        pbt_s = pbt_ns / NS
        good = total - reject
        availability = _ratio(apt_s, pbt_s)
        performance = _ratio(ideal_s, apt_s)
        quality = _ratio(good, total)
        parts = (availability, performance, quality)
        oee = None if None in parts else availability * performance * quality  # type: ignore[operator]
        return {
            "availability": availability, "performance": performance,
            "quality": quality, "oee": oee,
            "times_s": {s.value: ns / NS for s, ns in times.items()},
            "planned_busy_time_s": pbt_s,
            "counts": {"total": total, "good": good, "reject": reject},
            "ideal_production_time_s": ideal_s,
        }


    def stops(self, asset_ids: list[str] | str, start_ns: int, end_ns: int
              ) -> list[tuple[str, Interval]]:
        """(machine, stop) of every IDLE/DOWN/SETUP episode overlapping the window."""
        ids = [asset_ids] if isinstance(asset_ids, str) else list(asset_ids)
        return [(a, ep) for a in ids for ep in self.machine(a).episodes()
                if ep.state in STOP_STATES and ep.start < end_ns and ep.end > start_ns]

    def pareto(self, asset_ids: list[str] | str, start_ns: int, end_ns: int
               ) -> dict[str | None, dict[str, float]]:
        """Stop time (s, clipped to the window) and stop count per machine-given reason
        (None: the machine gave none)."""
        out: dict[str | None, dict[str, float]] = {}
        for _, ep in self.stops(asset_ids, start_ns, end_ns):
            row = out.setdefault(ep.reason, {"seconds": 0.0, "count": 0})
            row["seconds"] += (min(ep.end, end_ns) - max(ep.start, start_ns)) / NS
            row["count"] += 1
        return out

    def losses(self, asset_ids: list[str] | str, start_ns: int, end_ns: int,
               small_stop_s: float, startup_s: float) -> dict[str, Any]:
        """True six big losses (s), MTBF, MTTR, failure count, technical efficiency,
        setup and scrap ratios over the window, summed over ``asset_ids``."""
        ids = [asset_ids] if isinstance(asset_ids, str) else list(asset_ids)
        base = self.oee(ids, start_ns, end_ns)
        q: dict[str, float] = defaultdict(float)
        reject_ideal = startup_ideal = 0.0
        for asset in ids:
            m = self.machine(asset)
            mq = m.loss_quantities(start_ns, end_ns, round(small_stop_s * NS),
                                   round(startup_s * NS))
            for k, v in mq.items():
                q[k] += v
            reject_ideal += m.ideal_s(start_ns, end_ns, rejects=True)
            startup_ideal += mq["startup_reject_ideal_s"]
        t = base["times_s"]
        apt = t["PRODUCING"]
        failures = q["failure_ns"] / NS
        losses = {
            "failures": failures, "setups": t["SETUP"],
            "small_stops": t["IDLE"] + t["DOWN"] - failures,
            "slow_cycles": apt - base["ideal_production_time_s"],
            "process_rejects": reject_ideal - startup_ideal, "startup_rejects": startup_ideal,
        }
        n = int(q["failure_count"])
        counts = base["counts"]
        return {
            **base, "losses_s": losses,
            "fully_productive_time_s": base["ideal_production_time_s"] - reject_ideal,
            "small_stops": {"count": int(q["small_count"]), "short_stops_s": q["small_ns"] / NS,
                            "idle_s": t["IDLE"]},
            "failure_count": n, "setup_count": int(q["setup_count"]),
            "startup_reject_count": int(q["startup_reject"]),
            "mtbf_s": apt / n if n else None, "mttr_s": failures / n if n else None,
            "technical_efficiency": _ratio(apt, apt + t["DOWN"]),
            "setup_ratio": _ratio(t["SETUP"], apt),
            "scrap_ratio": _ratio(counts["reject"], counts["total"]),
        }


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _sorted(ts: list[int], icts: list[float]) -> tuple[list[int], list[float]]:
    """``ts`` sorted, with ``icts`` (parallel, or empty) in the same order."""
    if not icts:
        return sorted(ts), icts
    pairs = sorted(zip(ts, icts, strict=True))
    return [t for t, _ in pairs], [v for _, v in pairs]


def load_truth(path: Path | str) -> Truth:
    """Parse a truth log (a partly written last line, from a killed run, is ignored)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    header: dict[str, Any] | None = None
    machines: dict[str, MachineTruth] = {}
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if no == len(lines):
                break
            raise ValueError(f"{path}:{no}: not JSON") from None
        kind = rec.get("type")
        if kind == "scenario":
            header = rec
            machines = {
                m["asset_id"]: MachineTruth(m["asset_id"], float(m["ideal_cycle_time_s"]), m)
                for m in rec["machines"]}
        elif header is None:
            raise ValueError(f"{path}:{no}: the first record must be the scenario")
        elif kind == "state":
            machines[rec["machine"]].intervals.append(
                Interval(State(rec["state"]), int(rec["start"]), int(rec["end"]),
                         rec.get("reason")))
        elif kind == "part":
            m = machines[rec["machine"]]
            m.part_ts.append(int(rec["ts"]))
            if rec["reject"]:
                m.reject_ts.append(int(rec["ts"]))
            if "products" in m.info:  # older logs and machines without products: no ICTs
                ict = float(rec.get("ideal_cycle_time_s") or m.ideal_cycle_time_s)
                m.part_ict.append(ict)
                if rec["reject"]:
                    m.reject_ict.append(ict)
        elif kind == "outage":
            machines[rec["machine"]].outages.append((int(rec["start"]), int(rec["end"])))
        else:
            raise ValueError(f"{path}:{no}: unknown record type {kind!r}")
    if header is None:
        raise ValueError(f"{path}: no scenario record")
    for m in machines.values():
        m.intervals.sort(key=lambda iv: iv.start)
        m.part_ts, m.part_ict = _sorted(m.part_ts, m.part_ict)
        m.reject_ts, m.reject_ict = _sorted(m.reject_ts, m.reject_ict)
        m.intervals = cut_outages(m.intervals, m.outages)
    return Truth(header, machines)
