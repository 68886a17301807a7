"""Realistic machine data for benchmarks/scale.py, generated fast (numpy), and the ways it
goes in: an in-memory ``SampleReader`` (so the project's own roll-up code builds the
buckets of days no store keeps raw), and bulk loaders for the embedded store and InfluxDB.

What a real edge publishes per machine (about 35,000 samples a day): ``state`` on change
and every 10 s (the heartbeat), ``part_count``/``reject_count`` once per 20-120 s cycle
while PRODUCING and every 10 s, ``product`` a few times a day (at setups) and every 10 s.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from shopfloor.contract import DevicePath, Sample
from shopfloor.storage import Series
from shopfloor.storage.influx import InfluxV1Writer
from shopfloor.storage.line_protocol import to_lines
from shopfloor.storage.sqlite import SqliteStore

S = 10**9
DAY = 86400 * S
STATES = np.array(["PRODUCING", "IDLE", "DOWN", "SETUP", "PLANNED_STOP"], dtype=object)
# each state's share of episodes and its length range (s)
P_STATE = np.array([0.55, 0.2, 0.1, 0.05, 0.1])
LENGTH_S = np.array([[300, 3600], [20, 300], [60, 1800], [300, 1200], [600, 1800]])
PRODUCTS = np.array(["SHAFT", "FLANGE", "HUB"], dtype=object)
ICT_S = {"SHAFT": 30.0, "FLANGE": 55.0, "HUB": 80.0}
TAGS = ("state", "part_count", "reject_count", "product")


def generate(seed: int, day0: int, days: int) -> dict[str, Series]:
    """``days`` days of one machine from ``day0`` (ns), per tag."""
    rng = np.random.default_rng(seed)
    span = days * DAY
    # episodes: states and lengths
    n = int(span / S / 300) + 16
    codes = rng.choice(len(STATES), size=n, p=P_STATE)
    lengths = rng.uniform(LENGTH_S[codes, 0], LENGTH_S[codes, 1]) * S
    starts = day0 + np.concatenate(([0], np.cumsum(lengths[:-1]))).astype(np.int64)
    keep = starts < day0 + span
    codes, starts, lengths = codes[keep], starts[keep], lengths[keep].astype(np.int64)
    # products change at setups
    product_idx = np.cumsum(codes == 3) % len(PRODUCTS)
    # parts: while PRODUCING, one per 20-120 s cycle
    part_ts = []
    for s, ln in zip(starts[codes == 0], lengths[codes == 0], strict=True):
        cycle = rng.uniform(20, 120) * S
        k = int(ln // cycle)
        part_ts.append(s + (np.arange(1, k + 1) * cycle).astype(np.int64))
    parts = np.sort(np.concatenate(part_ts)) if part_ts else np.empty(0, np.int64)
    reject = rng.random(len(parts)) < 0.03
    # heartbeats every 10 s (with jitter), plus each change when it happens
    beat = day0 + np.arange(0, span, 10 * S, dtype=np.int64)
    beat += rng.integers(0, S, size=len(beat))
    ep = np.searchsorted(starts, beat, side="right") - 1
    state_ts = np.unique(np.concatenate((beat, starts)))
    state_ep = np.searchsorted(starts, state_ts, side="right") - 1
    count_ts = np.unique(np.concatenate((beat, parts)))
    part_count = np.searchsorted(parts, count_ts, side="right").astype(np.float64)
    reject_ts_all = parts[reject]
    reject_count = np.searchsorted(reject_ts_all, count_ts, side="right").astype(np.float64)
    prod_text = PRODUCTS[product_idx[np.maximum(ep, 0)]]
    return {
        "state": Series(state_ts, np.full(len(state_ts), np.nan),
                        STATES[codes[np.maximum(state_ep, 0)]].tolist()),
        "part_count": Series(count_ts, part_count, [None] * len(count_ts)),
        "reject_count": Series(count_ts.copy(), reject_count, [None] * len(count_ts)),
        "product": Series(beat, np.full(len(beat), np.nan), prod_text.tolist()),
    }


def _take(s: Series, lo: int, hi: int) -> Series:
    return Series(s.ts[lo:hi], s.value[lo:hi], s.text[lo:hi],
                  None if s.good is None else s.good[lo:hi])


class ArrayReader:
    """A ``SampleReader`` over generated series (``read`` only), for the roll-up code."""

    def __init__(self) -> None:
        self.data: dict[tuple[DevicePath, str], Series] = {}

    def read(self, device: DevicePath, tag: str, start_ns: int, end_ns: int, *,
             before: int = 1, after: int = 0, good_context: bool = False) -> Series:
        s = self.data.get((device, tag))
        if s is None:
            return Series.empty()
        i = int(np.searchsorted(s.ts, start_ns, side="left"))
        j = int(np.searchsorted(s.ts, max(start_ns, end_ns), side="left"))
        return _take(s, max(i - before, 0), min(j + after, len(s)))  # all samples are good


def sqlite_load(path: Path, device: DevicePath, series: dict[str, Series],
                lo: int, hi: int) -> int:
    """Samples with lo <= ts < hi into the embedded store's tables, in bulk (as the gateway
    would have written them; without write-log marks: the buckets are built alongside)."""
    store = SqliteStore(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    n = 0
    conn.execute("BEGIN")
    for tag, s in series.items():
        sid = store._series_id(conn, (device.enterprise, device.site, device.area,  # noqa: SLF001
                                      device.line, device.device, tag), create=True)
        k = (s.ts >= lo) & (s.ts < hi)
        ts, values = s.ts[k].tolist(), s.value[k].tolist()
        texts = [t for t, m in zip(s.text, k.tolist(), strict=True) if m]
        conn.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, 'good')",
                         [(sid, t, None if v != v else v, x)
                          for t, v, x in zip(ts, values, texts, strict=True)])
        n += len(ts)
    conn.execute("COMMIT")
    conn.close()
    store.close()
    return n


def influx_lines(device: DevicePath, series: dict[str, Series], lo: int, hi: int
                 ) -> list[str]:
    """The ``samples`` lines the gateway would write for lo <= ts < hi."""
    rows = []
    for tag, s in series.items():
        for i in np.flatnonzero((s.ts >= lo) & (s.ts < hi)).tolist():
            text = s.text[i]
            rows.append((device, Sample(tag, int(s.ts[i]),
                                        text if text is not None else float(s.value[i]))))
    return to_lines(rows)


def influx_load(writer: InfluxV1Writer, device: DevicePath, series: dict[str, Series],
                lo: int, hi: int) -> int:
    lines = influx_lines(device, series, lo, hi)
    writer.write_lines(lines)
    return len(lines)

