"""Federation at the enterprise: ``/federation`` (what is shared, with whom, and how the
uplink is doing) and ``/federation/aggregates`` (exactly what would be sent)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from shopfloor.server.api.deps import ConfigDep, RegistryDep, SourceDep, StateDep
from shopfloor.server.federation import enterprise, periods

router = APIRouter(prefix="/api/v1", tags=["federation"])
MAX_PERIODS = 400


@router.get("/federation")
def get_federation(state: StateDep, config: ConfigDep) -> dict[str, Any]:
    """This enterprise's federation: the cluster, the periods and sections it shares
    (never the token) and the uplink's state (queue, last delivery, last error)."""
    fed = config.federation
    if fed is None:
        return {"enabled": False}
    doc: dict[str, Any] = {
        "enabled": True, "cluster_url": fed.cluster_url, "enterprise": fed.enterprise,
        "periods": fed.periods, "share": fed.share, "interval_s": fed.interval_s,
        "timezone": str(enterprise.zone(config))}
    up = state.uplink
    if up is not None:
        doc["uplink"] = {**up.status.to_json(), "queue": up.outbox.counts()}
    return doc


@router.get("/federation/aggregates")
def get_aggregates(
    config: ConfigDep, registry: RegistryDep, source: SourceDep,
    period: Annotated[Literal["day", "month"], Query(description="day or month")],
    start: Annotated[str, Query(description="first period, e.g. 2026-12-01 or 2026-12")],
    end: Annotated[str | None, Query(description="last period (default: start)")] = None,
) -> dict[str, Any]:
    """The aggregates this enterprise shares for the periods from ``start`` to ``end``,
    as the cluster receives them."""
    if config.federation is None:
        raise HTTPException(404, "federation is not configured (federation: in the config)")
    try:
        first, last = periods.parse(start), periods.parse(end or start)
    except periods.PeriodError as exc:
        raise HTTPException(422, str(exc)) from None
    if len(periods.between(period, first, last)) > MAX_PERIODS:
        raise HTTPException(422, f"more than {MAX_PERIODS} periods; ask for fewer")
    aggs = enterprise.aggregates(config, registry, source, period, first, last)
    return {"enterprise": config.federation.enterprise, "period": period,
            "aggregates": [a.body() for a in aggs]}
