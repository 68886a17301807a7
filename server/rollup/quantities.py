"""The additive quantities of one machine per time bucket: what every metric reads.

``compute(inputs, edges, equipment, definition)`` turns one machine's series into one row
of quantities per bucket ``[edges[j], edges[j+1])``: nanoseconds per state, stop
episodes, counts and ideal times. Every quantity is attributed to an instant or a sample,
never to a window, so the quantities of a window are the sum of those of any partition of
it; a roll-up bucket and a raw computation of the same span are the same computation:

- time per state: each instant's state (a sample holds until the next one, for at most
  ``stale_ns``; the shift calendar laid over it);
- a stop episode (a maximal run of one state) is classified once, on its whole length and
  the state before it (a small stop is IDLE/DOWN right after PRODUCING shorter than
  ``small_ns``, other DOWN is a failure); its time goes to the buckets it overlaps, its
  count to the bucket where it starts;
- a counter increase belongs to the sample that shows it (``kernels.counter_deltas``: the
  previous good value is its baseline, wherever it lies), valued at the ideal cycle time
  of the product in force at that sample; a reject is a start-up reject when its sample
  falls within ``startup_ns`` after a SETUP ends.

So each of them depends on the data only within a bounded context around the span, which
``read_inputs`` reads: states from ``max(small_ns, startup_ns)`` before the span (with the
sample in force there) to ``small_ns`` after it; the good counter sample before the span;
the product in force at the span's start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shopfloor.contract import (
    SIGNAL_PART_COUNT,
    SIGNAL_PRODUCT,
    SIGNAL_REJECT_COUNT,
    SIGNAL_STATE,
    STATE_CODES,
    DevicePath,
    State,
)
from shopfloor.server import calendar, kernels
from shopfloor.server.calendar import CalendarConfig
from shopfloor.server.registry import EquipmentModel
from shopfloor.storage import SampleReader, Series

NEVER_STALE = 2**61
_CODE_BY_NAME = {s.value: c for s, c in STATE_CODES.items()}
_OFFLINE = STATE_CODES[State.OFFLINE]

STATE_FIELDS = tuple(f"{s.value.lower()}_ns" for s in STATE_CODES)
STOP_FIELDS = ("small_stop_ns", "small_stop_count", "small_down_ns", "failure_count",
               "failure_ns", "setup_count")  # the order of kernels.SMALL_NS ... SETUP_COUNT
# Integer quantities (ns and counts: exact in int64 whatever the sum); ``state_seen`` (1 once
# the machine has sent a state, up to small_ns after the bucket) combines by max, not sum.
INT_FIELDS = (*STATE_FIELDS, *STOP_FIELDS, "state_seen")
# Part quantities: integer-valued counts and ideal seconds.
FLOAT_FIELDS = ("total", "reject", "ideal_s", "reject_ideal_s", "startup_reject",
                "startup_reject_ideal_s", "parts_without_ict")
INT_INDEX = {f: i for i, f in enumerate(INT_FIELDS)}
FLOAT_INDEX = {f: i for i, f in enumerate(FLOAT_FIELDS)}
_STOP0 = len(STATE_FIELDS)
_SEEN = INT_INDEX["state_seen"]


@dataclass(frozen=True)
class Definition:
    """What the quantities depend on besides the data (the server's ``oee`` config)."""

    stale_ns: int
    small_ns: int = 0
    startup_ns: int = 0
    calendar: CalendarConfig | None = None

    @property
    def back_ns(self) -> int:
        """How far before a span the state series is read."""
        return max(self.small_ns, self.startup_ns)

    def fingerprint(self) -> str:
        """Changes whenever the quantities would (roll-ups computed otherwise are stale)."""
        cal = self.calendar.model_dump_json() if self.calendar is not None else "-"
        return f"v1;{self.stale_ns};{self.small_ns};{self.startup_ns};{cal}"


@dataclass
class Inputs:
    """One machine's series around a span [lo, hi), as ``read_inputs`` reads them."""

    lo: int
    hi: int
    state: Series
    parts: Series
    rejects: Series
    product: Series


def read_inputs(reader: SampleReader, device: DevicePath, lo: int, hi: int,
                d: Definition, *, product: bool = True) -> Inputs:
    """Every sample the quantities of the span [lo, hi) depend on (module docstring)."""
    counter = {"before": 1, "good_context": True}
    return Inputs(
        lo, hi,
        reader.read(device, SIGNAL_STATE, lo - d.back_ns, hi + d.small_ns),
        reader.read(device, SIGNAL_PART_COUNT, lo, hi, **counter),
        reader.read(device, SIGNAL_REJECT_COUNT, lo, hi, **counter),
        reader.read(device, SIGNAL_PRODUCT, lo, hi) if product else Series.empty())


@dataclass
class Quantities:
    """Rows of quantities, one per bucket (or per machine, or per window)."""

    ints: np.ndarray  # (n, len(INT_FIELDS)) int64
    floats: np.ndarray  # (n, len(FLOAT_FIELDS)) float64

    @classmethod
    def zeros(cls, n: int = 1) -> Quantities:
        return cls(np.zeros((n, len(INT_FIELDS)), np.int64),
                   np.zeros((n, len(FLOAT_FIELDS)), np.float64))

    def __len__(self) -> int:
        return len(self.ints)

    def row(self, k: int) -> Quantities:
        """Row ``k`` alone."""
        return Quantities(self.ints[k:k + 1], self.floats[k:k + 1])

    def total(self) -> Quantities:
        """The one-row sum (a window from its buckets, a scope from its machines)."""
        ints = self.ints.sum(axis=0, keepdims=True)
        if len(self):
            ints[0, _SEEN] = self.ints[:, _SEEN].max()
        return Quantities(ints, self.floats.sum(axis=0, keepdims=True))

    def __getitem__(self, name: str) -> np.ndarray:
        if name in INT_INDEX:
            return self.ints[:, INT_INDEX[name]]
        return self.floats[:, FLOAT_INDEX[name]]

    @property
    def state_ns(self) -> np.ndarray:
        """(n, N_STATES) ns per state, in ``kernels`` code order."""
        return self.ints[:, :len(STATE_FIELDS)]


def state_codes(series: Series) -> np.ndarray:
    """State names (strings) to kernel codes; anything unknown is OFFLINE."""
    if not series.text:
        return np.empty(0, np.int64)
    # a state series has a handful of distinct names: look up each once
    names, index = np.unique(np.array(series.text, dtype=object).astype(str),
                             return_inverse=True)
    table = np.array([_CODE_BY_NAME.get(n, _OFFLINE) for n in names], dtype=np.int64)
    return table[index.reshape(-1)]


def cycle_times(ts: np.ndarray, product: Series, by_product: dict[str, float],
                default: float | None) -> np.ndarray:
    """The ideal cycle time in force at each ``ts``: that of the latest ``product``
    sample at or before it, else ``default``; NaN where neither is known."""
    fallback = np.nan if default is None else default
    if not len(product):
        return np.full(len(ts), fallback)
    # a product series is long runs of one name (heartbeats): look up each run once
    text, value = np.array(product.text, dtype=object), product.value
    change = np.ones(len(text), dtype=bool)
    same_value = (value[1:] == value[:-1]) | (np.isnan(value[1:]) & np.isnan(value[:-1]))
    change[1:] = (text[1:] != text[:-1]) | ~same_value
    run = np.cumsum(change) - 1
    table = np.array([by_product.get(t if t is not None else (f"{v:g}" if v == v else ""),
                                     fallback)
                      for t, v in zip(text[change].tolist(), value[change].tolist(),
                                      strict=True)])
    i = np.searchsorted(product.ts, ts, side="right") - 1
    return np.where(i >= 0, table[run[np.maximum(i, 0)]], fallback)


def _in_windows(ts: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """bool per ts: inside one of the (ascending, disjoint) [start, end) windows."""
    if len(windows) == 0 or len(ts) == 0:
        return np.zeros(len(ts), dtype=bool)
    i = np.searchsorted(windows[:, 0], ts, side="right") - 1
    return (i >= 0) & (ts < windows[np.maximum(i, 0), 1])


def ideal_cycle_times(ts: np.ndarray, product: Series, eq: EquipmentModel) -> np.ndarray:
    """The machine's ideal cycle time at each ``ts`` (NaN where none is known)."""
    if not eq.ideal_cycle_times_s:
        return np.full(len(ts), np.nan if eq.ideal_cycle_time_s is None
                       else eq.ideal_cycle_time_s)
    return cycle_times(ts, product, eq.ideal_cycle_times_s, eq.ideal_cycle_time_s)


def compute(inputs: Inputs, edges: np.ndarray, eq: EquipmentModel, d: Definition
            ) -> Quantities:
    """The quantities of each bucket [edges[j], edges[j+1]) within [inputs.lo, inputs.hi]."""
    edges = np.asarray(edges, dtype=np.int64)
    nb = len(edges) - 1
    q = Quantities.zeros(max(nb, 0))
    if nb <= 0:
        return q
    lo, hi = int(edges[0]), int(edges[-1])
    horizon = hi + d.small_ns
    ts, codes, stale = inputs.state.ts, state_codes(inputs.state), d.stale_ns
    if d.calendar is not None:  # staleness made explicit, then the calendar laid over it
        ts, codes = kernels.materialize_stale(ts, codes, stale)
        ts, codes = kernels.overlay(ts, codes, *calendar.steps(
            d.calendar, lo - d.back_ns, horizon))
        stale = NEVER_STALE
    q.ints[:, :_STOP0] = kernels.bucket_durations(ts, codes, edges[:-1], edges[1:], stale)
    stops, windows = kernels.stop_stats(ts, codes, edges, stale, horizon, d.small_ns,
                                     d.startup_ns)
    q.ints[:, _STOP0:_STOP0 + len(STOP_FIELDS)] = stops
    first = int(inputs.state.ts[0]) if len(inputs.state) else None
    q.ints[:, _SEEN] = (first is not None) & (edges[1:] + d.small_ns > (first or 0))

    bits = eq.counter_bits
    parts, rejects = inputs.parts, inputs.rejects
    p_delta = kernels.counter_deltas(parts.good_values(), bits)
    r_delta = kernels.counter_deltas(rejects.good_values(), bits)
    p_ict = ideal_cycle_times(parts.ts, inputs.product, eq)
    r_ict = ideal_cycle_times(rejects.ts, inputs.product, eq)
    startup = _in_windows(rejects.ts, windows)
    f = q.floats
    f[:, FLOAT_INDEX["total"]] = kernels.per_bucket(parts.ts, p_delta, edges)
    f[:, FLOAT_INDEX["ideal_s"]] = kernels.per_bucket(parts.ts, np.nan_to_num(p_ict * p_delta),
                                                 edges)
    f[:, FLOAT_INDEX["parts_without_ict"]] = kernels.per_bucket(
        parts.ts, (np.isnan(p_ict) & (p_delta > 0)).astype(np.float64), edges)
    r_ideal = np.nan_to_num(r_ict * r_delta)
    f[:, FLOAT_INDEX["reject"]] = kernels.per_bucket(rejects.ts, r_delta, edges)
    f[:, FLOAT_INDEX["reject_ideal_s"]] = kernels.per_bucket(rejects.ts, r_ideal, edges)
    f[:, FLOAT_INDEX["startup_reject"]] = kernels.per_bucket(rejects.ts, r_delta * startup, edges)
    f[:, FLOAT_INDEX["startup_reject_ideal_s"]] = kernels.per_bucket(rejects.ts, r_ideal * startup,
                                                                edges)
    return q
