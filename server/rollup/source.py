"""Where every metric gets its quantities: roll-up buckets where they are valid, raw
samples everywhere else, with the same answer either way (``quantities`` is additive).

``QuantitySource(reader, rollups, entered)`` answers ``per_device(equipment, q)`` (one
window, one row per machine) and ``per_window(equipment, q, windows)`` (many windows,
summed over the machines). Without ``rollups``, or for a definition other than theirs
(e.g. /losses with its own thresholds), everything is raw. The counts people entered
(``entered``) are added to either, here and nowhere else (``entered.py``).

A machine's buckets are valid on [built_from, settled), cut short at the earliest write
the maintainers have not applied yet (less ``small_ns``, how far back a new state can
change a stop); that span is covered by whole buckets (``plan.decompose``), and the rest
of the window, edges shorter than a minute, is computed from raw samples.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from shopfloor.server.registry import Asset
from shopfloor.storage import SampleReader
from shopfloor.storage.base import WriteLog
from shopfloor.times import iso

from .buckets import DAY, BucketStore, DeviceState, MaintainerState
from .entered import EnteredCounts, entry_quantities
from .maintainer import machine_fingerprint
from .plan import Span, decompose, floor_to
from .quantities import INT_INDEX, Definition, Quantities, compute, read_inputs

SEEN = INT_INDEX["state_seen"]


@dataclass
class Rollups:
    """The roll-ups a source may read: their store, the write log they follow and the
    definition they were computed under."""

    buckets: BucketStore
    log: WriteLog
    definition: Definition
    live_s: float = 90.0  # a maintainer seen this recently is following the log
    overlap_ns: int = 0  # InfluxDB: slack for writers' clocks (as the maintainer's)
    minute_ns: int | None = None  # minute buckets are kept this long (maintainer.prune)
    cache_s: float = 1.0  # machine and maintainer states are read at most this often
    _states: tuple[float, dict, list] | None = field(default=None, repr=False)

    def states(self) -> tuple[dict[str, DeviceState], list[MaintainerState]]:
        """The machines' and maintainers' states, read at most every ``cache_s``. An older
        reading is safe: ``settled`` and the cursors only move on, and the writes since
        the cursors are always read fresh (``QuantitySource._valid``)."""
        now = time.monotonic()
        if self._states is None or now - self._states[0] > self.cache_s:
            self._states = (now, self.buckets.devices(), self.buckets.maintainers())
        return self._states[1], self._states[2]

    def minute_from(self, now: int) -> int:
        """Minute buckets exist from here on (hours and days for good)."""
        return -(2**62) if self.minute_ns is None else floor_to(now - self.minute_ns, DAY)


@dataclass
class Answered:
    """How an answer was made, for the response: buckets read, raw spans computed, and
    where the store no longer keeps raw samples, the edges answered by buckets alone."""

    buckets: int = 0
    raw_spans: int = 0
    raw_from: int | None = None  # raw samples are complete from here on
    left_out_ns: int = 0  # window time before ``raw_from`` that no whole bucket covers
    count_entries: int = 0  # counts people entered, added

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"buckets": self.buckets, "raw_spans": self.raw_spans}
        if self.count_entries:
            doc["count_entries"] = self.count_entries
        if self.left_out_ns:
            doc |= {"rollups_only_before": iso(self.raw_from or 0),
                    "left_out_s": self.left_out_ns / 1e9}
        return doc


@dataclass
class _Valid:
    """Per machine: where its buckets may be read (empty: nowhere)."""

    lo: int = 0
    hi: int = 0


@dataclass
class QuantitySource:
    reader: SampleReader
    rollups: Rollups | None = None
    entered: EnteredCounts | None = None
    answered: Answered = field(default_factory=Answered)

    # --- the two questions -------------------------------------------------------------

    def per_device(self, equipment: list[Asset], d: Definition, t0: int, t1: int
                   ) -> dict[str, Quantities]:
        """One row of quantities per machine over [t0, t1)."""
        return {a: q for a, q in self._quantities(equipment, d, [(t0, t1)], "device").items()}

    def per_window(self, equipment: list[Asset], d: Definition, windows: list[Span]
                   ) -> Quantities:
        """One row per window (ascending, disjoint), summed over the machines."""
        rows = self._quantities(equipment, d, windows, "window")
        return rows.get("", Quantities.zeros(len(windows)))

    # --- how -------------------------------------------------------------------------

    def _quantities(self, equipment: list[Asset], d: Definition, windows: list[Span],
                    by: str) -> dict[str, Quantities]:
        self.answered = Answered()
        valid = self._valid(equipment, d)
        raw_from = self.reader.raw_from()
        minute_from = self.rollups.minute_from(time.time_ns()) if self.rollups else 0
        out: dict[str, Quantities] = {}

        def add(key: str, j: int, q: Quantities) -> None:
            row = out.setdefault(key, Quantities.zeros(len(windows)))
            seen = max(row.ints[j, SEEN], q.ints[0, SEEN])  # a flag, not a sum
            row.ints[j] += q.ints[0]
            row.floats[j] += q.floats[0]
            row.ints[j, SEEN] = seen

        groups: dict[tuple[int, int], list[Asset]] = defaultdict(list)
        for a in equipment:
            v = valid.get(a.id, _Valid())
            groups[(v.lo, v.hi)].append(a)
        for (lo, hi), assets in groups.items():
            raw: dict[int, list[Span]] = defaultdict(list)  # window -> raw spans
            pieces: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
            for j, (a, b) in enumerate(windows):
                va, vb = max(a, lo), min(b, hi)
                if va >= vb:
                    raw[j].append((a, b))
                    continue
                plan = decompose(va, vb, minute_from)
                pieces[j] = plan.buckets
                raw[j] += [s for s in ((a, va), *plan.raw, (vb, b)) if s[1] > s[0]]
            self._add_buckets(assets, pieces, by, add)
            for asset in assets:
                key = asset.id if by == "device" else ""
                for j, q in self._raw(asset, d, raw, raw_from):
                    add(key, j, q)
        self._add_entered(equipment, windows, by, add)
        return out

    def _add_entered(self, equipment: list[Asset], windows: list[Span], by: str, add) -> None:
        """The counts people entered, each in the window holding its instant."""
        if self.entered is None or not windows or not equipment:
            return
        found = self.entered.entries([a.id for a in equipment], windows[0][0], windows[-1][1])
        starts = np.array([a for a, _ in windows], dtype=np.int64)
        ends = np.array([b for _, b in windows], dtype=np.int64)
        by_machine: dict[str, list] = defaultdict(list)
        for e in found:
            j = int(np.searchsorted(starts, e.at, side="right")) - 1
            if j >= 0 and e.at < ends[j]:
                by_machine[e.machine].append((j, e))
        for asset in equipment:
            mine = by_machine.get(asset.id)
            if not mine:
                continue
            q = entry_quantities(self.reader, asset, [e for _, e in mine])
            for k, (j, _) in enumerate(mine):
                add(asset.id if by == "device" else "", j, q.row(k))
            self.answered.count_entries += len(mine)

    def _add_buckets(self, assets: list[Asset], pieces: dict[int, list[tuple[int, int, int]]],
                     by: str, add) -> None:
        if not pieces:
            return
        assert self.rollups is not None
        ids = [a.id for a in assets]
        if by == "device":
            for j, plan in pieces.items():
                for res, s, e in plan:
                    for dev, q in self.rollups.buckets.sums(res, s, e, ids, "device").items():
                        add(str(dev), j, q)
                    self.answered.buckets += len(ids) * (e - s) // res
            return
        by_res: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for j, plan in pieces.items():
            for res, s, e in plan:
                by_res[res].append((s, e, j))
        for res, spans in by_res.items():
            lo, hi = min(s for s, _, _ in spans), max(e for _, e, _ in spans)
            sums = self.rollups.buckets.sums(res, lo, hi, ids, "start")
            starts = np.array(sorted(int(k) for k in sums), dtype=np.int64)
            for s, e, j in spans:
                for k in starts[(starts >= s) & (starts < e)].tolist():
                    add("", j, sums[k])
            self.answered.buckets += len(ids) * sum((e - s) // res for s, e, _ in spans)

    def _raw(self, asset: Asset, d: Definition, raw: dict[int, list[Span]],
             raw_from: int | None) -> list[tuple[int, Quantities]]:
        """The raw spans of one machine, contiguous runs computed from one read each."""
        assert asset.device is not None and asset.equipment is not None
        spans = sorted((s, e, j) for j, ss in raw.items() for s, e in ss)
        if raw_from is not None:  # retention thinned the raw samples before raw_from: the
            old = [(s, e) for s, e, _ in spans if s < raw_from]  # buckets alone answer
            self.answered.raw_from = raw_from
            self.answered.left_out_ns += sum(e - s for s, e in old)
            spans = [sp for sp in spans if sp[0] >= raw_from]
        out: list[tuple[int, Quantities]] = []
        i = 0
        while i < len(spans):
            run = [spans[i]]
            while i + 1 < len(spans) and spans[i + 1][0] == run[-1][1]:
                i += 1
                run.append(spans[i])
            i += 1
            lo, hi = run[0][0], run[-1][1]
            edges = np.array([s for s, _, _ in run] + [hi], dtype=np.int64)
            q = compute(read_inputs(self.reader, asset.device, lo, hi, d), edges,
                        asset.equipment, d)
            out += [(j, q.row(k)) for k, (_, _, j) in enumerate(run)]
            self.answered.raw_spans += len(run)
        return out

    def _valid(self, equipment: list[Asset], d: Definition) -> dict[str, _Valid]:
        """Per machine, where its buckets hold (none: no roll-ups for ``d``)."""
        r = self.rollups
        if r is None or r.definition.fingerprint() != d.fingerprint():
            return {}
        now = time.time_ns()
        states, maintainers = r.states()
        live = [m.cursor for m in maintainers if now - m.heartbeat <= r.live_s * 1e9]
        applied = min(live) if live else max((m.cursor for m in maintainers), default=0)
        _, pending = r.log.written_since(applied - r.overlap_ns)
        out = {}
        for a in equipment:
            st = states.get(a.id)
            if st is None or st.fingerprint != machine_fingerprint(a):
                continue  # never built, or built with other cycle times: raw
            hi = st.settled
            if a.id in pending:
                hi = min(hi, pending[a.id][0] - d.small_ns)
            out[a.id] = _Valid(st.built_from, hi)
        return out
