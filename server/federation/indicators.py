"""The cluster's indicators over time, from the aggregates it holds.

A month's or quarter's figures of an enterprise come from its month aggregates: the OEE
totals and completeness are flows (summed over the months), the equipment counts a stock
(those of the latest month held). The cluster's figures are given two ways, labelled:
``pooled`` (counts and times summed over the enterprises, ratios recomputed, as every
roll-up of the project) and ``mean_of_enterprises`` (the unweighted mean of enterprise
ratios, how regional figures are published). Beside them, the published figures
(``reference/indicators.csv``) in force at the period and each one's gap in percentage
points; ``improved`` ranks the enterprises by their change over a span.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopfloor.server import digitalization, oee
from shopfloor.server.rates import mean_of_defined, ratio

from .aggregates import Aggregate
from .periods import Period, between
from .store import ClusterStore

INDICATORS = ("equipment_digitalization_rate", "networking_rate", "key_process_nc_rate",
              "oee", "availability", "performance", "quality", "data_completeness")
POOLED_NOTE = "counts and times summed over the enterprises, ratios recomputed"
MEAN_NOTE = ("unweighted mean of enterprise values, over those with a defined value "
             "(how regional figures are published)")


@dataclass
class Sums:
    """What one enterprise (or the pool) sends over a period, summed."""

    counts: digitalization.Counts | None = None
    totals: oee.Totals = field(default_factory=oee.Totals)
    covered_ns: int = 0
    expected_ns: int = 0
    has_oee: bool = False

    @classmethod
    def of(cls, months: list[Aggregate]) -> Sums:
        s = cls()
        for a in months:  # in order: the latest month's counts stand
            if a.equipment is not None:
                s.counts = a.equipment.counts()
            if a.oee is not None:
                s.totals.add(a.oee.totals(a.enterprise))
                s.has_oee = True
            if a.completeness is not None:
                s.covered_ns += a.completeness.covered_ns
                s.expected_ns += a.completeness.expected_ns
        return s

    def add(self, o: Sums) -> None:
        if o.counts is not None:
            if self.counts is None:
                self.counts = digitalization.Counts()
            self.counts.add(o.counts)
        self.totals.add(o.totals)
        self.has_oee |= o.has_oee
        self.covered_ns += o.covered_ns
        self.expected_ns += o.expected_ns

    def values(self) -> dict[str, float | None]:
        rates = self.counts.rates() if self.counts is not None else dict.fromkeys(
            digitalization.RATES)
        r = oee.report(self.totals) if self.has_oee else {}
        return {**rates, **{k: r.get(k) for k in ("oee", "availability", "performance",
                                                  "quality")},
                "data_completeness": ratio(self.covered_ns, self.expected_ns)}


def _latest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(rows, key=lambda r: r["as_of"]) if rows else None


def figures_in_force(region: str, period: Period, reference: Path | None
                     ) -> dict[str, dict[str, Any]]:
    """Per indicator with published figures: the regional one in force at the period's end
    (latest ``as_of`` not after it), the national statistic likewise, and the national
    target (the first not before the period, else the latest)."""
    last = f"{period.after.year:04d}-{period.after.month:02d}"  # as_of < the month after
    out: dict[str, dict[str, Any]] = {}
    for ind in digitalization.PUBLISHED_AS:
        rows = digitalization.published(ind, reference)
        regional = [r for r in rows if r["region"] == region and r["as_of"] < last]
        national = [r for r in rows if r["region"] == "China" and r["scope"] != "target"
                    and r["as_of"] < last]
        targets = sorted((r for r in rows if r["scope"] == "target"), key=lambda r: r["as_of"])
        ahead = [t for t in targets if t["as_of"] >= period.first.isoformat()[:7]]
        out[ind] = {"regional": _latest(regional), "national": _latest(national),
                    "national_target": ahead[0] if ahead else _latest(targets)}
    return out


def gaps(values: dict[str, float | None], figures: dict[str, dict[str, Any]]
         ) -> dict[str, dict[str, float | None]]:
    """Per indicator with figures: value minus the regional figure and minus the national
    target, in percentage points (None where either is missing)."""
    def gap(v: float | None, fig: dict[str, Any] | None) -> float | None:
        return None if v is None or fig is None else v * 100 - fig["value_percent"]
    return {ind: {"to_regional_pp": gap(values.get(ind), f["regional"]),
                  "to_national_target_pp": gap(values.get(ind), f["national_target"])}
            for ind, f in figures.items()}


def period_doc(store: ClusterStore, period: Period, names: dict[str, str], region: str,
               reference: Path | None) -> dict[str, Any]:
    """Every enterprise's figures over one month or quarter, pooled and mean, with the
    published figures in force and the gaps to them."""
    months = [m.label for m in period.months()]
    held = store.get("month", months)
    figures = figures_in_force(region, period, reference)
    pooled, rows = Sums(), []
    for ent in sorted(held):
        per = held[ent]
        aggs = [per[m] for m in months if m in per]
        s = Sums.of(aggs)
        pooled.add(s)
        values = s.values()
        rows.append({"id": ent, "name": names.get(ent) or aggs[-1].name or ent,
                     "months": [a.label for a in aggs],
                     "complete": len(aggs) == len(months) and all(a.complete for a in aggs),
                     **values, "gaps": gaps(values, figures),
                     "completeness": {"covered_s": s.covered_ns / 1e9,
                                      "expected_s": s.expected_ns / 1e9}})
    pooled_values = pooled.values()
    mean = {ind: mean_of_defined([r[ind] for r in rows]) for ind in INDICATORS}
    return {"period": period.label, "kind": period.kind, "first_day": period.first.isoformat(),
            "last_day": period.after.isoformat(), "enterprises": rows,
            "pooled": {**pooled_values, "gaps": gaps(pooled_values, figures),
                       "note": POOLED_NOTE},
            "mean_of_enterprises": {**mean, "gaps": gaps(mean, figures), "note": MEAN_NOTE},
            "published": figures}


def history(store: ClusterStore, kind: str, first: Period, last: Period,
            names: dict[str, str], region: str, reference: Path | None) -> list[dict[str, Any]]:
    """``period_doc`` of every month or quarter from ``first`` to ``last``."""
    return [period_doc(store, p, names, region, reference) for p in between(kind, first, last)]


def improved(docs: list[dict[str, Any]], indicator: str) -> list[dict[str, Any]]:
    """Enterprises by their change of ``indicator`` (pp) from their first to their last
    period with a value, most improved first; those without two values last."""
    seen: dict[str, list[tuple[str, float]]] = {}
    names: dict[str, str] = {}
    for d in docs:
        for r in d["enterprises"]:
            names[r["id"]] = r["name"]
            if r[indicator] is not None:
                seen.setdefault(r["id"], []).append((d["period"], r[indicator]))
            else:
                seen.setdefault(r["id"], [])
    out = []
    for ent, vals in seen.items():
        two = len(vals) >= 2
        out.append({"id": ent, "name": names[ent],
                    "from": vals[0][0] if two else None, "to": vals[-1][0] if two else None,
                    "first": vals[0][1] if two else None, "last": vals[-1][1] if two else None,
                    "change_pp": (vals[-1][1] - vals[0][1]) * 100 if two else None})
    out.sort(key=lambda r: (r["change_pp"] is None, -(r["change_pp"] or 0.0), r["id"]))
    for i, r in enumerate(out, 1):
        r["rank"] = i if r["change_pp"] is not None else None
    return out
