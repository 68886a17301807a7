"""Counts people enter, as quantities: rejects found at inspection, parts of a machine
that does not count them (``operations.counts`` keeps them; DESIGN.md "Counts people
enter").

An entry counts at one instant ``at``, as a counter sample would, so the quantities of a
window stay the sum over any partition of it. ``QuantitySource`` adds them to what the
samples (buckets or raw) give, the one place every metric reads, so /oee, /trend,
/losses, orders, alerts and federation aggregates all see them:

- ``total``: ``n`` more parts made (total + n, ideal time + n × the ideal cycle time in
  force at ``at``): performance and total rise, rejects stay;
- ``reject``: ``n`` of the parts counted were bad (reject + n, reject ideal time + n ×
  ICT; total unchanged): quality falls, performance stays. Never a start-up reject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from shopfloor.contract import SIGNAL_PRODUCT
from shopfloor.server.registry import Asset
from shopfloor.storage import SampleReader, Series

from .quantities import FLOAT_INDEX, Quantities, ideal_cycle_times

RUN_NS = 3600 * 10**9  # entries closer than this share one read of the product series
Kind = Literal["total", "reject"]
KINDS: tuple[Kind, ...] = ("total", "reject")


@dataclass(frozen=True)
class CountEntry:
    machine: str  # asset id
    kind: Kind
    quantity: int
    at: int  # ns: the instant it counts at


class EnteredCounts(Protocol):
    """Where entries are kept (the operations database)."""

    def entries(self, machines: list[str], t0: int, t1: int) -> list[CountEntry]:
        """The entries of ``machines`` with t0 <= at < t1."""
        ...


def entry_quantities(reader: SampleReader, asset: Asset, entries: list[CountEntry]
                     ) -> Quantities:
    """One row of quantities per entry of ``asset``: its counts and ideal times."""
    eq = asset.equipment
    assert eq is not None and asset.device is not None
    q = Quantities.zeros(len(entries))
    if not entries:
        return q
    ts = np.array([e.at for e in entries], dtype=np.int64)
    ict = np.empty(len(ts))
    if eq.ideal_cycle_times_s:  # the product in force at each entry: one read per run
        order = np.argsort(ts, kind="stable")  # of entries less than an hour apart
        cuts = np.flatnonzero(np.diff(ts[order]) > RUN_NS) + 1
        for run in np.split(order, cuts):
            product = reader.read(asset.device, SIGNAL_PRODUCT, int(ts[run[0]]),
                                  int(ts[run[-1]]) + 1)
            ict[run] = ideal_cycle_times(ts[run], product, eq)
    else:
        ict[:] = ideal_cycle_times(ts, Series.empty(), eq)
    n = np.array([e.quantity for e in entries], dtype=np.float64)
    total = np.array([e.kind == "total" for e in entries])
    f = q.floats
    f[:, FLOAT_INDEX["total"]] = np.where(total, n, 0.0)
    f[:, FLOAT_INDEX["ideal_s"]] = np.where(total, np.nan_to_num(n * ict), 0.0)
    f[:, FLOAT_INDEX["parts_without_ict"]] = total & np.isnan(ict)
    f[:, FLOAT_INDEX["reject"]] = np.where(total, 0.0, n)
    f[:, FLOAT_INDEX["reject_ideal_s"]] = np.where(total, 0.0, np.nan_to_num(n * ict))
    return q
