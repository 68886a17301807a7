"""Past shifts written straight into a store, so that trends, monthly history and the
cluster's quarters are not empty in a demo (``shopfloor history``, ``up`` with
``history.days``).

Each machine of a scenario runs the simulators' own dynamics (``MachineModel``) once per
shift of the server's calendar (every day at 00:00-24:00 UTC without one), with every
duration scaled from seconds to minutes (``SCALE``) and its stops (IDLE, DOWN, SETUP)
longer the older the day (``History.improvement``): a plant that got better over the
year. Breaks are PLANNED_STOP. The samples are what an edge publishes: the state on
change and as a heartbeat (within the server's ``stale_after_s``, so no time is
OFFLINE), the counters at the end of each run of production.

``load_history`` returns each machine's true totals per day, against which the server's
figures of any past day can be checked (``DayTruth``).
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tqdm import tqdm

from shopfloor.contract import DevicePath, Sample, State
from shopfloor.server.calendar import CalendarConfig, shifts
from shopfloor.simulators.machine import MachineModel
from shopfloor.simulators.scenario import MachineSpec, Scenario, Timeline
from shopfloor.storage.base import SampleWriter
from shopfloor.times import NS

SCALE = 60.0  # history durations: the scenario's seconds as minutes
STOPS = (State.IDLE, State.DOWN, State.SETUP)
CHUNK = 50_000  # rows per store write


@dataclass
class DayTruth:
    """One machine's true totals of one day (UTC date of the shift start)."""

    producing_s: float = 0.0
    planned_busy_s: float = 0.0  # shift time less breaks and PLANNED_STOP
    total: int = 0
    rejects: int = 0
    ideal_s: float = 0.0

    @property
    def oee(self) -> float | None:
        """good x ICT / planned busy time (= A x P x Q)."""
        if not self.planned_busy_s or not self.total:
            return None
        return self.ideal_s * (self.total - self.rejects) / self.total / self.planned_busy_s


def shift_windows(calendar: CalendarConfig | None, t0: int, t1: int
                  ) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """(start, end, breaks) of each shift wholly inside [t0, t1); without a calendar,
    each whole UTC day."""
    if calendar is not None:
        return [(s, e, b) for _, s, e, b in shifts(calendar, t0, t1) if t0 <= s and e <= t1]
    day = datetime.fromtimestamp(t0 / NS, UTC).replace(hour=0, minute=0, second=0,
                                                       microsecond=0)
    out = []
    while True:
        s = int(day.timestamp()) * NS
        e = s + 86400 * NS
        if e > t1:
            return out
        if s >= t0:
            out.append((s, e, []))
        day += timedelta(days=1)


def _scaled(spec: MachineSpec, stop_factor: float) -> MachineSpec:
    return replace(spec, durations_s={
        st: (lo * SCALE * (stop_factor if st in STOPS else 1.0),
             hi * SCALE * (stop_factor if st in STOPS else 1.0))
        for st, (lo, hi) in spec.durations_s.items()})


class _Machine:
    """One machine's history: its cumulative counters and the samples so far."""

    def __init__(self, spec: MachineSpec, heartbeat_ns: int, seed: str):
        self.spec, self.heartbeat_ns = spec, heartbeat_ns
        self.dev: DevicePath = spec.path
        self.parts = self.rejects = 0
        self.progress_s = 0.0  # production towards the next part
        self.rng = random.Random(f"{seed}:{spec.id}:parts")
        self.rows: list[tuple[DevicePath, Sample]] = []

    def counters(self, at: int) -> None:
        self.rows += [(self.dev, Sample("part_count", at, self.parts)),
                      (self.dev, Sample("reject_count", at, self.rejects))]

    def state(self, state: State, start: int, end: int) -> None:
        """The state from ``start`` with heartbeats until ``end``."""
        ts = start
        while ts < end:
            self.rows.append((self.dev, Sample("state", ts, state.value)))
            ts += self.heartbeat_ns

    def produce(self, spec: MachineSpec, seconds: float, at: int, day: DayTruth) -> None:
        cycle = spec.ideal_cycle_time_s * spec.speed_factor
        made = math.floor((self.progress_s + seconds) / cycle)
        self.progress_s = self.progress_s + seconds - made * cycle
        bad = sum(self.rng.random() < spec.reject_rate for _ in range(made))
        self.parts, self.rejects = self.parts + made, self.rejects + bad
        self.counters(at)
        day.total, day.rejects = day.total + made, day.rejects + bad
        day.ideal_s += made * spec.ideal_cycle_time_s


def _periods(start: int, end: int, breaks: list[tuple[int, int]]
             ) -> Iterator[tuple[int, int, bool]]:
    """(start, end, is_break) pieces of a shift, in time order."""
    t = start
    for b0, b1 in sorted(breaks):
        b0, b1 = max(b0, start), min(b1, end)
        if b0 >= b1:
            continue
        if t < b0:
            yield t, b0, False
        yield b0, b1, True
        t = b1
    if t < end:
        yield t, end, False


def load_history(store: SampleWriter, scenario: Scenario, *, days: int, now_ns: int,
                 improvement: float = 0.3, calendar: CalendarConfig | None = None,
                 heartbeat_s: float = 20.0,
                 progress: Callable[[int], None] = lambda n: None,
                 ) -> dict[tuple[str, str], DayTruth]:
    """Write the scenario's machines' shifts of the ``days`` before ``now_ns`` into
    ``store``; (asset id, shift date) -> that day's truth. ``progress(n)``: n shifts done."""
    t0 = now_ns - days * 86400 * NS
    windows = shift_windows(calendar, t0, now_ns)
    machines = [_Machine(spec, int(heartbeat_s * NS), f"{scenario.seed}:history")
                for spec in scenario.machines()]
    truth: dict[tuple[str, str], DayTruth] = {}
    for k, (s, e, breaks) in enumerate(windows):
        age = (now_ns - s) / (days * 86400 * NS) if days else 0.0
        label = datetime.fromtimestamp(s / NS, UTC).date().isoformat()
        for m in machines:
            day = truth.setdefault((m.spec.asset_id, label), DayTruth())
            spec = _scaled(m.spec, 1 + improvement * min(age, 1.0))
            if k == 0:  # the counters' first value: what the first parts are counted from
                m.counters(s)
            for p0, p1, is_break in _periods(s, e, breaks):
                if is_break:
                    m.state(State.PLANNED_STOP, p0, p1)
                    continue
                model = MachineModel(spec, Timeline(lead_in_s=0, duration_s=(p1 - p0) / NS,
                                                    lead_out_s=0), seed=f"{label}:{p0}")
                for seg in model.segments():
                    if seg.state is State.NO_SHIFT:
                        break
                    a, b = p0 + round(seg.start * NS), p0 + round(seg.end * NS)
                    m.state(seg.state, a, b)
                    if seg.state is State.PRODUCING:
                        day.producing_s += (b - a) / NS
                        m.produce(spec, (b - a) / NS, b, day)
                    if seg.state is not State.PLANNED_STOP:
                        day.planned_busy_s += (b - a) / NS
            if calendar is not None:  # the machine stops with the shift
                m.state(State.NO_SHIFT, e, e + 1)
            if len(m.rows) >= CHUNK:
                store.write(m.rows)
                m.rows = []
        progress(k + 1)
    for m in machines:
        store.write(m.rows)
    return truth


def run(config: Path, scenario_path: Path, days: int, improvement: float) -> int:
    """``shopfloor history``: write ``days`` of the scenario's history into the store of a
    server config (its calendar and ``stale_after_s`` too), with progress on stderr."""
    from shopfloor.config import ConfigError, load_config
    from shopfloor.server.config import ServerConfig
    from shopfloor.simulators.scenario import load_scenario
    from shopfloor.storage import open_reader, open_writers

    cfg = load_config(config, ServerConfig)
    scenario = load_scenario(scenario_path)
    if days < 1:
        raise ConfigError(f"--days {days}: give at least one day")
    reader = open_reader(cfg.store)
    seen = reader.first_seen()
    held = sorted(m.asset_id for m in scenario.machines() if m.asset_id in seen)
    getattr(reader, "close", lambda: None)()
    if held:
        raise ConfigError(f"the store of {config} already holds samples of {held[0]}"
                          f"{f' and {len(held) - 1} more' if len(held) > 1 else ''}: "
                          "history goes into a store without them (a second history "
                          "would overlap the first)")
    now = time.time_ns()
    writers = open_writers(cfg.store)
    store = writers[0] if len(writers) == 1 else _Fanout(writers)
    windows = len(shift_windows(cfg.oee.calendar, now - days * 86400 * NS, now))
    t = time.perf_counter()
    try:
        with tqdm(total=windows, unit="shift", desc="history", file=sys.stderr,
                  disable=None) as bar:
            truth = load_history(store, scenario, days=days, now_ns=now,
                                 improvement=improvement, calendar=cfg.oee.calendar,
                                 heartbeat_s=0.8 * cfg.oee.stale_after_s,
                                 progress=lambda n: bar.update(n - bar.n))
    finally:
        for w in writers:
            w.close()
    parts = sum(d.total for d in truth.values())
    print(f"history: {len(scenario.machines())} machines, {windows} shifts over {days} "
          f"days, {parts:,} parts, in {time.perf_counter() - t:.1f}s")
    return 0


@dataclass
class _Fanout:
    """Every configured store gets the history (embedded and InfluxDB)."""

    writers: list[SampleWriter]

    def write(self, rows: list[tuple[DevicePath, Sample]]) -> None:
        for w in self.writers:
            w.write(rows)

    def close(self) -> None:
        pass
