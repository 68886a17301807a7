"""One enterprise's aggregates of a period, and the wire model the cluster accepts.

An ``Aggregate`` holds, for one enterprise and one day or month, only sums: equipment
counts by class as of the period's end (or now), the additive ``oee.Totals`` of the period
(nanoseconds per state, stop episodes, counts, ideal seconds) and data completeness (time
with data over time expected, of the digital equipment). Everything is computed by the
server's own code (``oee.totals_by``, ``digitalization.counts``): the cluster rolls the
sums up and recomputes the ratios with ``oee.report`` and ``Counts.rates``.
"""

from __future__ import annotations

import time
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopfloor.config import ConfigError
from shopfloor.contract import SIGNAL_STATE, STATE_CODES, State
from shopfloor.server import digitalization, kernels, oee
from shopfloor.server.config import ServerConfig
from shopfloor.server.rates import ratio
from shopfloor.server.registry import Asset, Registry
from shopfloor.server.rollup.quantities import STOP_FIELDS
from shopfloor.server.rollup.source import QuantitySource
from shopfloor.storage import SampleReader
from shopfloor.times import iso, seconds_ns

from .config import FederationConfig, Section
from .periods import Period, parse

SCHEMA = "shopfloor.federation/v1"
# the fields of ``oee.Totals`` that travel as they are (the lists travel as their lengths)
_SUMMED = ("total", "reject", "ideal_s", "startup_reject", "reject_ideal_s",
           "startup_reject_ideal_s", "parts_without_ict", "equipment")
Count = Field(ge=0)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # nothing else gets in


class EquipmentCounts(_Wire):
    """Production equipment by class (units), as of the period's end."""

    equipment: int = Count
    digital: int = Count
    networked: int = Count  # measured: published within the networked window
    numerically_controlled: int = Count
    key_process: int = Count
    key_process_nc: int = Count

    def counts(self) -> digitalization.Counts:
        return digitalization.Counts(self.equipment, self.digital, self.networked,
                                     self.key_process, self.key_process_nc)


class OeeTotals(_Wire):
    """``oee.Totals`` over the period, summed over the enterprise's equipment."""

    state_ns: dict[State, int]
    stops: dict[str, int]  # rollup.quantities.STOP_FIELDS
    total: float = Count
    reject: float = Count
    ideal_s: float = Count
    startup_reject: float = Count
    reject_ideal_s: float = Count
    startup_reject_ideal_s: float = Count
    parts_without_ict: float = Count
    equipment: int = Count
    equipment_without_data: int = Count
    equipment_without_cycle_time: int = Count
    equipment_with_clock_skew: int = Count

    @classmethod
    def of(cls, t: oee.Totals) -> OeeTotals:
        return cls(state_ns={s: int(t.state_ns[c]) for s, c in STATE_CODES.items()},
                   stops={f: int(t.stops[i]) for i, f in enumerate(STOP_FIELDS)},
                   **{f: getattr(t, f) for f in _SUMMED},
                   equipment_without_data=len(t.without_data),
                   equipment_without_cycle_time=len(t.without_cycle_time),
                   equipment_with_clock_skew=len(t.clock_skew))

    def totals(self, who: str) -> oee.Totals:
        """Back to ``oee.Totals``; the equipment lists become ``who#k`` placeholders (the
        cluster learns how many, never which)."""
        state = np.zeros(kernels.N_STATES, dtype=np.int64)
        for s, v in self.state_ns.items():
            state[STATE_CODES[s]] = v
        def tags(n: int) -> list[str]:
            return [f"{who}#{k}" for k in range(n)]
        return oee.Totals(
            state_ns=state,
            stops=np.array([self.stops.get(f, 0) for f in STOP_FIELDS], dtype=np.int64),
            **{f: getattr(self, f) for f in _SUMMED},
            without_data=tags(self.equipment_without_data),
            without_cycle_time=tags(self.equipment_without_cycle_time),
            clock_skew=tags(self.equipment_with_clock_skew))


class Completeness(_Wire):
    """How much of the expected data arrived: of the digital equipment, the time with a
    state (not OFFLINE) over the time of the period so far."""

    digital_equipment: int = Count
    equipment_with_data: int = Count
    covered_ns: int = Count
    expected_ns: int = Count

    def rate(self) -> float | None:
        return ratio(self.covered_ns, self.expected_ns)


class Aggregate(_Wire):
    """What an enterprise sends for one period; (enterprise, period, label) is its key and
    ``revision`` orders the versions (a resend overwrites, never adds)."""

    schema_: Literal["shopfloor.federation/v1"] = Field(SCHEMA, alias="schema")
    enterprise: str = Field(min_length=1, max_length=64)
    name: str = Field(max_length=200)
    period: Literal["day", "month"]
    label: str = Field(max_length=16)
    start: str
    end: str
    as_of: str  # the counts are as of here: min(end, when computed)
    complete: bool  # the period had ended when computed
    revision: int = Field(ge=0)
    equipment: EquipmentCounts | None = None
    oee: OeeTotals | None = None
    completeness: Completeness | None = None

    @model_validator(mode="after")
    def _label_names_the_period(self) -> Aggregate:
        if parse(self.label).kind != self.period:
            raise ValueError(f"label {self.label!r} is not a {self.period}")
        return self

    def body(self) -> dict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def content_key(self) -> str:
        """What changes when the figures do (not the revision or the computing time)."""
        doc = self.model_dump(mode="json", by_alias=True, exclude={"revision", "as_of"})
        return repr(sorted(doc.items()))


def seen_before(reader: SampleReader, equipment: list[Asset], at: int, live: bool
                ) -> dict[str, int]:
    """Equipment id -> its newest state sample before ``at`` (``digitalization.counts``
    checks it against the networked window); ``live`` (``at`` is now): the store's
    ``last_seen``, as /digitalization reads it."""
    if live:
        return reader.last_seen()
    out = {}
    for a in equipment:  # an empty window and the one sample before it: the newest
        assert a.device is not None
        s = reader.read(a.device, SIGNAL_STATE, at, at, before=1)
        if len(s):
            out[a.id] = int(s.ts[-1])
    return out


def enterprise_of(registry: Registry, fed: FederationConfig) -> Asset:
    asset = registry.get(fed.enterprise)
    if asset is None or asset.level != "enterprise":
        ids = [e.id for e in registry.enterprises()]
        raise ConfigError(f"federation.enterprise={fed.enterprise!r} is not an enterprise "
                          f"of the registry (it has {ids})")
    return asset


def aggregate(cfg: ServerConfig, registry: Registry, source: QuantitySource,
              period: Period, tz: ZoneInfo, now: int | None = None) -> Aggregate:
    """The aggregate of the configured enterprise over ``period`` (up to now)."""
    fed = cfg.federation
    assert fed is not None
    now = time.time_ns() if now is None else now
    ent = enterprise_of(registry, fed)
    t0, t1 = period.bounds(tz)
    at = max(min(t1, now), t0)
    equipment = registry.equipment_under(ent)
    shared: set[Section] = set(fed.share)
    doc: dict = {}
    if "equipment" in shared:
        window = seconds_ns(cfg.digitalization.networked_window_s)
        seen = seen_before(source.reader, equipment, at, live=at == now)
        c = digitalization.counts(registry, ent, seen, at, window)
        doc["equipment"] = EquipmentCounts(
            **vars(c), numerically_controlled=sum(
                bool(a.equipment and a.equipment.numerically_controlled) for a in equipment))
    if shared & {"oee", "completeness"} and at > t0:
        digital = [a for a in equipment if a.equipment and a.equipment.digital]
        totals = oee.totals_by(source, {"all": equipment, "digital": digital},
                               oee.MetricsQuery.of(cfg.oee, t0, at))
        if "oee" in shared:
            doc["oee"] = OeeTotals.of(totals["all"])
        if "completeness" in shared:
            d = totals["digital"]
            covered = int(d.state_ns.sum()) - int(d.state_ns[STATE_CODES[State.OFFLINE]])
            doc["completeness"] = Completeness(
                digital_equipment=len(digital),
                equipment_with_data=len(digital) - len(d.without_data),
                covered_ns=covered, expected_ns=len(digital) * (at - t0))
    return Aggregate(enterprise=ent.id, name=ent.name, period=period.kind, label=period.label,
                     start=iso(t0), end=iso(t1), as_of=iso(at), complete=now >= t1,
                     revision=now, **doc)
