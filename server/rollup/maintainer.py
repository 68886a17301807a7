"""The roll-up maintainer: keeps each machine's buckets equal to the raw computation.

``Maintainer.round()`` (every ``interval_s`` in a thread, ``start()``/``stop()``):

1. read the store's write log from its cursor: the marks of every write since (this is
   the snapshot; samples are read only after it);
2. per machine, recompute from the earliest mark that touches settled time (less
   ``small_ns``, how far back a new state can change a stop's class) up to ``settled``,
   and go on to ``now - margin`` (margin = ``small_ns`` + ``settle_s``, so data arriving
   within ``settle_s`` is never late): minute buckets from raw samples
   (``quantities.compute``), hours and days summed from minutes;
3. record per machine ``built_from``/``settled`` and the maintainer's cursor.

A machine seen for the first time, or whose own parameters (counter width, cycle times)
changed, is built from its first sample, but not before ``raw_from`` (where retention has
thinned the raw data: older buckets are kept as they are) nor ``backfill_days`` ago
(older windows are answered from raw samples until ``shopfloor rollup rebuild``).
Writing the same samples twice only recomputes the same buckets. Several maintainers may
run at once: each follows the log itself, so a bucket one of them computed from older
data is recomputed in its own next round; queries treat writes after the slowest live
maintainer's cursor as pending.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from shopfloor.server.registry import Asset
from shopfloor.storage import SampleReader
from shopfloor.storage.base import WriteLog

from .buckets import DAY, HOUR, MINUTE, BucketStore, DeviceState, MaintainerState, short_hash
from .plan import floor_to
from .quantities import Definition, Quantities, compute, read_inputs

log = logging.getLogger(__name__)


def machine_fingerprint(asset: Asset) -> str:
    """Of what the quantities take from the registry for one machine."""
    eq = asset.equipment
    assert eq is not None
    icts = sorted(eq.ideal_cycle_times_s.items())
    return short_hash(f"{eq.counter_bits};{eq.ideal_cycle_time_s};{icts}")


def _ceil_to(t: int, res: int) -> int:
    return -(-t // res) * res


@dataclass
class RoundStats:
    machines: int = 0
    minutes: int = 0  # minute buckets computed from raw samples
    devices_written: int = 0  # machines with writes since the last round
    seconds: float = 0.0


class Maintainer:
    def __init__(self, reader: SampleReader, log_: WriteLog, buckets: BucketStore,
                 equipment: Callable[[], list[Asset]], definition: Definition, *,
                 name: str = "server", settle_s: float = 60.0, interval_s: float = 30.0,
                 overlap_ns: int = 0, minute_days: float | None = None,
                 backfill_days: float | None = None):
        self.reader, self.log, self.buckets = reader, log_, buckets
        self.equipment, self.d, self.name = equipment, definition, name
        self.margin_ns = definition.small_ns + int(settle_s * 1e9)
        self.interval_s = interval_s
        self.overlap_ns = overlap_ns  # InfluxDB: marks are ordered by the writers' clocks
        self.minute_ns = None if minute_days is None else int(minute_days * 86400e9)
        self.backfill_ns = None if backfill_days is None else int(backfill_days * 86400e9)
        mine = [m for m in buckets.maintainers() if m.name == name]
        self.cursor = mine[0].cursor if mine else 0
        # known before its first round: no other maintainer prunes writes it has not seen
        buckets.set_maintainer(MaintainerState(name, self.cursor, time.time_ns()))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one round ------------------------------------------------------------------

    def round(self, now_ns: int | None = None) -> RoundStats:
        t = time.perf_counter()
        now = time.time_ns() if now_ns is None else now_ns
        snapshot, written = self.log.written_since(self.cursor - self.overlap_ns)
        snapshot = max(snapshot, self.cursor)
        late = {aid: lo for aid, (lo, _hi) in written.items()}
        stats = RoundStats(devices_written=len(written))
        target = floor_to(now - self.margin_ns, MINUTE)
        states = self.buckets.devices()
        raw_from = self.reader.raw_from()
        first: dict[str, int] | None = None
        for asset in self.equipment():
            fp = machine_fingerprint(asset)
            st = states.get(asset.id)
            if self._stop.is_set():
                break  # the rest next time (a machine is recorded only once built)
            if st is None or st.fingerprint != fp:
                first = self.reader.first_seen() if first is None else first
                start = self._first_bucket(first.get(asset.id, target), target, raw_from, now)
                st = DeviceState(fp, start, start)
            frm = st.settled
            if asset.id in late and late[asset.id] - self.d.small_ns < st.settled:
                frm = floor_to(late[asset.id] - self.d.small_ns, HOUR)
                if raw_from is not None:
                    frm = max(frm, _ceil_to(raw_from, HOUR))
                frm = min(frm, st.settled)
            to = max(target, st.settled)
            if frm < to:
                minutes, reached = self.build(asset, frm, to)
                stats.minutes += minutes
                if reached < to:  # stopping: not built to the end, nothing recorded
                    break
            self.buckets.set_device(asset.id, DeviceState(fp, min(st.built_from, frm), to))
            stats.machines += 1
        if self._stop.is_set():
            return stats  # the cursor stays: the next start applies these writes again
        self.cursor = snapshot
        self.buckets.set_maintainer(MaintainerState(self.name, snapshot, now))
        self._prune(now)
        stats.seconds = time.perf_counter() - t
        return stats

    def _first_bucket(self, first: int, target: int, raw_from: int | None,
                      now: int | None) -> int:
        """Where a machine's buckets begin: the day of its first sample, not before
        ``raw_from`` (thinned raw data) nor, in a round (``now``), ``backfill_days`` ago."""
        start = floor_to(first, DAY)
        if raw_from is not None:
            start = max(start, _ceil_to(raw_from, HOUR))
        if now is not None and self.backfill_ns is not None:
            start = max(start, floor_to(now - self.backfill_ns, DAY))
        return min(start, target)

    def build(self, asset: Asset, frm: int, to: int,
              progress: Callable[[int], None] | None = None) -> tuple[int, int]:
        """Recompute ``asset``'s buckets over [frm, to) (minute-aligned), a day at a time;
        returns how many minute buckets were computed and how far it got (``to`` unless
        the maintainer is stopping)."""
        assert asset.device is not None and asset.equipment is not None
        n = 0
        a = frm
        while a < to and not self._stop.is_set():
            b = min(floor_to(a, DAY) + DAY, to)
            inputs = read_inputs(self.reader, asset.device, a, b, self.d)
            edges = np.arange(a, b + 1, MINUTE, dtype=np.int64)
            q = compute(inputs, edges, asset.equipment, self.d)
            self.buckets.put(asset.id, MINUTE, edges[:-1], q)
            self._sum_up(asset.id, a, b, edges[:-1], q)
            n += len(q)
            if progress is not None:
                progress(b - a)
            a = b
        return n, a

    def _sum_up(self, device: str, a: int, b: int, starts: np.ndarray, q: Quantities) -> None:
        """Hours and days ending within (a, b]: from the minutes just computed where they
        cover the whole bucket, else from the stored finer buckets."""
        for res, finer in ((HOUR, MINUTE), (DAY, HOUR)):
            first = floor_to(a, res) if floor_to(a, res) + res <= b else None
            if first is None:
                continue
            bucket_starts = np.arange(first, floor_to(b, res), res, dtype=np.int64)
            rows = []
            for s in bucket_starts.tolist():
                if res == HOUR and s >= a:  # all 60 minutes are in q
                    sel = (starts >= s) & (starts < s + res)
                    rows.append(Quantities(q.ints[sel], q.floats[sel]).total())
                else:
                    got = self.buckets.sums(finer, s, s + res, [device], "device")
                    rows.append(got.get(device, Quantities.zeros()))
            if rows:
                self.buckets.put(device, res, bucket_starts, _stack(rows))

    def _prune(self, now: int) -> None:
        """Forget the writes every live maintainer has applied, and old minute buckets."""
        live = [m.cursor for m in self.buckets.maintainers()
                if now - m.heartbeat <= 3 * self.interval_s * 1e9 + 30e9]
        if live:
            self.log.prune_write_log(min(live) - self.overlap_ns)
        if self.minute_ns is not None:
            self.buckets.prune(MINUTE, floor_to(now - self.minute_ns, DAY))

    # --- rebuild ----------------------------------------------------------------------

    def rebuild(self, assets: Iterable[Asset], now_ns: int | None = None,
                progress: Callable[[int], None] | None = None) -> int:
        """Recompute the given machines from their first sample (not before ``raw_from``)
        up to ``now - margin``, as if seen for the first time."""
        now = time.time_ns() if now_ns is None else now_ns
        target = floor_to(now - self.margin_ns, MINUTE)
        first, raw_from = self.reader.first_seen(), self.reader.raw_from()
        n = 0
        for asset in assets:
            start = self._first_bucket(first.get(asset.id, target), target, raw_from, None)
            n += self.build(asset, start, target, progress)[0]
            self.buckets.set_device(asset.id,
                                    DeviceState(machine_fingerprint(asset), start, target))
        self.buckets.flush()
        return n

    # --- thread -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="rollup-maintainer",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread; it stops within a day's build of one machine, before its store
        may be closed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                s = self.round()
                log.debug("rollup round: %d machines, %d minutes, %d written to, %.2fs",
                          s.machines, s.minutes, s.devices_written, s.seconds)
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("rollup round failed")
            self._stop.wait(self.interval_s)


def _stack(rows: list[Quantities]) -> Quantities:
    return Quantities(np.vstack([r.ints for r in rows]), np.vstack([r.floats for r in rows]))
