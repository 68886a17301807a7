"""The cluster views: ``/cluster`` (who federates), ``/cluster/history`` (every
enterprise's indicators per month or quarter, pooled and mean, published figures and
gaps), ``/cluster/enterprises/{id}/history``, ``/cluster/improved`` and the exports
``/cluster/export/comparison`` and ``/cluster/export/enterprises/{id}`` (CSV or XLSX),
and ``/cluster/report`` (the printable page, English or Chinese)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from . import export, indicators, periods, report
from .cluster import ClusterState

MAX_PERIODS = 120
Granularity = Literal["month", "quarter"]
Indicator = Literal["equipment_digitalization_rate", "networking_rate", "key_process_nc_rate",
                    "oee", "availability", "performance", "quality", "data_completeness"]
MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


router = APIRouter(prefix="/api/v1/cluster", tags=["cluster"])  # the read scope (cluster.py)


async def _state(request: Request) -> ClusterState:
    return ClusterState.of(request)


StateDep = Annotated[ClusterState, Depends(_state)]


def _period(label: str, kinds: tuple[str, ...]) -> periods.Period:
    try:
        p = periods.parse(label)
    except periods.PeriodError as exc:
        raise HTTPException(422, str(exc)) from None
    if p.kind not in kinds:
        raise HTTPException(422, f"{label!r} is a {p.kind}; give a {' or a '.join(kinds)}")
    return p


def _history(state: ClusterState, granularity: str, start: str, end: str | None
             ) -> list[dict[str, Any]]:
    first, last = _period(start, ("month", "quarter")), _period(end or start,
                                                                ("month", "quarter"))
    if len(periods.between(granularity, first, last)) > MAX_PERIODS:
        raise HTTPException(422, f"more than {MAX_PERIODS} periods; ask for fewer")
    assert state.store is not None
    return indicators.history(state.store, granularity, first, last, state.names,
                              state.config.region, state.config.reference)


def _one(state: ClusterState, label: str) -> dict[str, Any]:
    p = _period(label, ("month", "quarter"))
    assert state.store is not None
    return indicators.period_doc(state.store, p, state.names, state.config.region,
                                 state.config.reference)


Start = Annotated[str, Query(description="first month (2026-01) or quarter (2026-Q1)")]
End = Annotated[str | None, Query(description="last month or quarter (default: start)")]
Gran = Annotated[Granularity, Query(description="month or quarter")]


@router.get("")
def get_cluster(state: StateDep) -> dict[str, Any]:
    """The cluster, the enterprises allowed to push and what each has sent."""
    assert state.store is not None
    held = {e["id"]: e for e in state.store.enterprises()}
    return {"name": state.config.name, "region": state.config.region, "enterprises": [
        {"id": i, "name": n, **{k: v for k, v in held.get(i, {}).items() if k != "id"}}
        for i, n in state.names.items()]}


@router.get("/history")
def get_history(state: StateDep, start: Start, granularity: Gran = "month", end: End = None
                ) -> dict[str, Any]:
    """Each enterprise's indicators per month or quarter, the cluster pooled and as the
    mean of enterprises (labelled), the published figures in force and the gaps."""
    return {"granularity": granularity, "definitions": export.DEFINITIONS,
            "periods": _history(state, granularity, start, end)}


@router.get("/enterprises/{enterprise}/history")
def get_enterprise_history(state: StateDep, enterprise: str, start: Start,
                           granularity: Gran = "month", end: End = None) -> dict[str, Any]:
    """One enterprise's indicators per month or quarter beside the cluster's."""
    docs = _history(state, granularity, start, end)
    out = []
    for d in docs:
        row = next((r for r in d["enterprises"] if r["id"] == enterprise), None)
        out.append({"period": d["period"], "enterprise": row,
                    "pooled": d["pooled"], "mean_of_enterprises": d["mean_of_enterprises"],
                    "published": d["published"]})
    if enterprise not in state.names and all(o["enterprise"] is None for o in out):
        raise HTTPException(404, f"no enterprise {enterprise!r}; see /api/v1/cluster")
    return {"enterprise": enterprise, "granularity": granularity, "periods": out}


@router.get("/improved")
def get_improved(state: StateDep, indicator: Annotated[Indicator, Query()], start: Start,
                 granularity: Gran = "month", end: End = None) -> dict[str, Any]:
    """Enterprises ranked by their change of ``indicator`` over the span (pp)."""
    docs = _history(state, granularity, start, end)
    return {"indicator": indicator, "granularity": granularity,
            "enterprises": indicators.improved(docs, indicator)}


Fmt = Annotated[Literal["csv", "xlsx"], Query(description="csv or xlsx")]
Label = Annotated[str, Query(description="a month (2026-12) or a quarter (2026-Q4)")]


def _file(table: export.Table, fmt: str, name: str) -> Response:
    body = export.to_csv(table) if fmt == "csv" else export.to_xlsx(table, name)
    return Response(body, media_type=MEDIA[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


@router.get("/export/comparison")
def export_comparison(state: StateDep, period: Label, format: Fmt = "csv") -> Response:
    """The comparison of a month or quarter: one row per enterprise, pooled, mean."""
    doc = _one(state, period)
    return _file(export.comparison_table(doc), format, f"comparison-{doc['period']}")


@router.get("/export/enterprises/{enterprise}")
def export_enterprise(state: StateDep, enterprise: str, period: Label,
                      format: Fmt = "csv") -> Response:
    """One enterprise's indicators of a month or quarter beside the cluster's."""
    doc = _one(state, period)
    if not any(r["id"] == enterprise for r in doc["enterprises"]):
        raise HTTPException(404, f"no aggregates of enterprise {enterprise!r} for {period}")
    return _file(export.enterprise_table(doc, enterprise), format,
                 f"{enterprise}-{doc['period']}")


@router.get("/report", response_class=HTMLResponse)
def get_report(state: StateDep, period: Label,
               lang: Annotated[Literal["en", "zh"], Query(description="en or zh")] = "en"
               ) -> HTMLResponse:
    """The printable report of a month or quarter: a chart per indicator with the
    published figures, the data completeness beside each figure, the definitions."""
    return HTMLResponse(report.render(_one(state, period), lang, state.config.name))
