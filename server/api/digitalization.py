"""Digitalization routes: ``/digitalization`` (the rates of one scope) and ``/compare``
(a cluster's enterprises ranked on one indicator, OEE included)."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from shopfloor.server import digitalization, oee
from shopfloor.server.api.deps import (
    MAX_WINDOW_S,
    ConfigDep,
    ReaderDep,
    RegistryDep,
    SourceDep,
    Window,
    asset_of,
)
from shopfloor.server.rates import mean_of_defined
from shopfloor.times import seconds_ns

router = APIRouter(prefix="/api/v1", tags=["digitalization"])


class CompareMetric(StrEnum):
    equipment_digitalization_rate = "equipment_digitalization_rate"
    networking_rate = "networking_rate"
    key_process_nc_rate = "key_process_nc_rate"
    oee = "oee"


@router.get("/digitalization")
def get_digitalization(
    scope: Annotated[str, Query(description="asset id: cluster, enterprise, site, ...")],
    config: ConfigDep, reader: ReaderDep, registry: RegistryDep,
    networked_window_s: Annotated[float | None, Query(
        gt=0, le=MAX_WINDOW_S, description="networked = data seen this recently; "
                                           "default from the config")] = None,
) -> dict[str, Any]:
    """Equipment digitalization, networking and key-process NC rates of a scope:
    pooled over its equipment; above enterprises also per enterprise and the
    labelled mean of enterprise rates."""
    asset = asset_of(registry, scope)
    window = config.digitalization.networked_window_s if networked_window_s is None \
        else networked_window_s
    doc = digitalization.indicators(registry, asset, reader.last_seen(), time.time_ns(),
                                    seconds_ns(window))
    return {"scope": asset.id, "level": asset.level, "networked_window_s": window, **doc}


@router.get("/compare")
def compare(
    scope: Annotated[str, Query(description="cluster id: its enterprises are ranked")],
    metric: Annotated[CompareMetric, Query(description="indicator to rank on")],
    config: ConfigDep, reader: ReaderDep, source: SourceDep, registry: RegistryDep,
    start: Annotated[str | None, Query(description="window start (metric=oee)")] = None,
    end: Annotated[str | None, Query(description="window end (metric=oee)")] = None,
) -> dict[str, Any]:
    """Enterprises of a cluster ranked on one indicator (best first), with the
    pooled and mean-of-enterprise figures and the published reference figures."""
    asset = asset_of(registry, scope)
    if asset.level != "cluster":
        raise HTTPException(422, f"scope {scope!r} is a {asset.level}; compare ranks the "
                                 f"enterprises of a cluster: use scope={registry.root.id}")
    m = metric.value
    if m == "oee":
        if start is None or end is None:
            raise HTTPException(422, "metric=oee needs start and end (ISO 8601)")
        window = Window.of(registry, config.oee, scope, start, end)
        ents = registry.enterprises()
        totals = oee.totals_by(source, {"": window.equipment} | {
            e.id: registry.equipment_under(e) for e in ents}, window.query())
        rows = [{"id": e.id, "name": e.name, "oee": oee.report(totals[e.id])["oee"]}
                for e in ents]
        summary = {"pooled": oee.report(totals[""])["oee"],
                   "mean_of_enterprise_rates": mean_of_defined([r["oee"] for r in rows])}
    else:
        doc = digitalization.indicators(
            registry, asset, reader.last_seen(), time.time_ns(),
            seconds_ns(config.digitalization.networked_window_s))
        rows = [{"id": e["id"], "name": e["name"], m: e[m]}
                for e in doc.get("enterprises", [])]
        summary = {"pooled": doc["pooled"][m],
                   "mean_of_enterprise_rates": doc.get(
                       "mean_of_enterprise_rates", {}).get(m)}
    return {"scope": asset.id, "metric": m, **summary,
            "enterprises": digitalization.rank(rows, m),
            "published": digitalization.published(m)}
