"""Digitalization indicators from the registry and the store (ARCHITECTURE.md).

- equipment digitalization rate = digital equipment / all production equipment;
- networking rate = equipment that published data within ``window_ns`` / all;
- key-process NC rate = key-process equipment that is numerically controlled /
  all key-process equipment.
Counts are summed over a scope and the rates recomputed (pooled); at cluster
level the mean of the enterprise rates (how regional figures are published) is
given beside it, labelled. Reference figures come from ``indicators.csv``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopfloor.server.rates import mean_of_defined, ratio
from shopfloor.server.registry import Asset, Registry

RATES = ("equipment_digitalization_rate", "networking_rate", "key_process_nc_rate")
# Our indicator -> the indicator name in the published reference table.
PUBLISHED_AS = {"equipment_digitalization_rate": "production_equipment_digitalization_rate",
                "key_process_nc_rate": "key_process_nc_rate"}
_HERE = Path(__file__).resolve().parent
REFERENCE_CANDIDATES = (_HERE.parent.parent / "shared" / "reference" / "indicators.csv",
                        _HERE / "reference" / "indicators.csv")


@dataclass
class Counts:
    equipment: int = 0
    digital: int = 0
    networked: int = 0
    key_process: int = 0
    key_process_nc: int = 0

    def add(self, o: Counts) -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(o, k))

    def rates(self) -> dict[str, float | None]:
        return {"equipment_digitalization_rate": ratio(self.digital, self.equipment),
                "networking_rate": ratio(self.networked, self.equipment),
                "key_process_nc_rate": ratio(self.key_process_nc, self.key_process)}


def counts(registry: Registry, scope: Asset, last_seen: dict[str, int], now_ns: int,
           window_ns: int) -> Counts:
    c = Counts()
    for a in registry.equipment_under(scope):
        eq = a.equipment
        assert eq is not None
        seen = last_seen.get(a.id)
        c.equipment += 1
        c.digital += eq.digital
        c.networked += seen is not None and now_ns - seen <= window_ns
        c.key_process += eq.key_process
        c.key_process_nc += eq.key_process and eq.numerically_controlled
    return c


def indicators(registry: Registry, scope: Asset, last_seen: dict[str, int], now_ns: int,
               window_ns: int) -> dict[str, Any]:
    """Pooled counts and rates for the scope; with enterprises below it, each
    enterprise's rates and the (labelled) mean of enterprise rates."""
    pooled = counts(registry, scope, last_seen, now_ns, window_ns)
    doc: dict[str, Any] = {"counts": vars(pooled), "pooled": pooled.rates()}
    ents = [c for c in scope.children if c.level == "enterprise"]
    if ents:
        per = []
        for e in ents:
            ec = counts(registry, e, last_seen, now_ns, window_ns)
            per.append({"id": e.id, "name": e.name, "counts": vars(ec), **ec.rates()})
        doc["enterprises"] = per
        doc["mean_of_enterprise_rates"] = {
            rate: mean_of_defined([p[rate] for p in per]) for rate in RATES}
        doc["mean_of_enterprise_rates"]["note"] = (
            "unweighted mean over enterprises with a defined rate (how regional figures "
            "are published); `pooled` divides the summed counts")
    return doc


def reference_path() -> Path:
    """The shared reference table next to the repo if present, else the packaged copy."""
    return next(p for p in REFERENCE_CANDIDATES if p.exists())


def published(metric: str, path: Path | None = None) -> list[dict[str, Any]]:
    """Published figures for ``metric`` (rows of indicators.csv, value in percent)."""
    name = PUBLISHED_AS.get(metric)
    if name is None:
        return []
    with open(path or reference_path(), encoding="utf-8", newline="") as f:
        return [{"region": r["region"], "scope": r["scope"], "as_of": r["as_of"],
                 "value_percent": float(r["value_percent"]), "basis": r["basis"],
                 "source": r["source"], "note": r["note"]}
                for r in csv.DictReader(f) if r["indicator"] == name]


def rank(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Enterprises best first on ``metric``; those without a value last, by id."""
    ranked = sorted(rows, key=lambda r: (r[metric] is None, -(r[metric] or 0.0), r["id"]))
    for i, r in enumerate(ranked, 1):
        r["rank"] = i if r[metric] is not None else None
    return ranked
