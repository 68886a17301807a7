"""The metrics server: FastAPI app (REST API + built-in dashboard) and ``run()``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from shopfloor import __version__
from shopfloor.config import ConfigError, load_config
from shopfloor.server import (
    auth,
    calendar,
    digitalization,
    kernels,
    losses,
    oee,
    timeline,
    trend,
)
from shopfloor.server.config import ServerConfig
from shopfloor.server.registry import Asset, Registry
from shopfloor.storage import open_reader

log = logging.getLogger("shopfloor.server")
STATIC = Path(__file__).parent / "static"
MAX_WINDOW_S = 366 * 24 * 3600
MAX_INTERVALS = 50_000
OEE_EVERY_S = 5.0  # the stream recomputes the shift OEE at most this often
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


Granularity = Literal["1h", "shift", "day"]


class CompareMetric(StrEnum):
    equipment_digitalization_rate = "equipment_digitalization_rate"
    networking_rate = "networking_rate"
    key_process_nc_rate = "key_process_nc_rate"
    oee = "oee"


def parse_time(name: str, value: str) -> int:
    """ISO 8601 to ns since epoch; a time without a zone is taken as UTC."""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(422, f"{name}={value!r} is not an ISO 8601 time, "
                                 "e.g. 2026-11-22T08:00:00Z") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // timedelta(microseconds=1) * 1000


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


def create_app(cfg: ServerConfig, base_dir: Path = Path(".")) -> FastAPI:
    registry_path = cfg.registry if cfg.registry.is_absolute() else base_dir / cfg.registry
    registry = Registry.load(registry_path)
    stale_ns = int(cfg.oee.stale_after_s * 1e9)
    state: dict[str, Any] = {}
    require = auth.requirer(cfg.auth)
    READ, ADMIN = [require("read")], [require("admin")]  # noqa: N806

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        t = time.perf_counter()
        kernels.warm_up()
        log.info("kernels ready in %.2fs", time.perf_counter() - t)
        outer = state.get("reader")  # lifespans may nest (test clients)
        reader = state["reader"] = open_reader(cfg.store)
        try:
            yield
        finally:
            if outer is None:
                state.pop("reader", None)
            else:
                state["reader"] = outer
            close = getattr(reader, "close", None)
            if close:
                close()

    app = FastAPI(title="shopfloor", version=__version__, lifespan=lifespan,
                  description="OEE and digitalization metrics from shop-floor data.")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__,
                "store": "influxdb" if cfg.store.influxdb else "embedded"}

    @app.get("/api/v1/assets", tags=["assets"], dependencies=READ)
    def assets() -> dict[str, Any]:
        """The asset tree: cluster, enterprises, sites, workshops, lines, equipment."""
        return registry.root.to_json()

    def steps(t0: int, t1: int) -> oee.Steps | None:
        return None if cfg.oee.calendar is None else calendar.steps(cfg.oee.calendar, t0, t1)

    def get_asset(scope: str) -> Asset:
        asset = registry.get(scope)
        if asset is None:
            raise HTTPException(404, f"no asset {scope!r}; see /api/v1/assets for the ids")
        return asset

    def resolve(scope: str, start: str, end: str) -> tuple[Asset, int, int]:
        """The asset and the window [t0, t1), t1 clipped to now; 404/422 otherwise."""
        asset = get_asset(scope)
        t0, t1 = parse_time("start", start), parse_time("end", end)
        if t1 <= t0:
            raise HTTPException(422, "end must be after start")
        if t1 - t0 > MAX_WINDOW_S * 1_000_000_000:
            raise HTTPException(422, "window longer than 366 days; ask for a shorter one")
        return asset, t0, max(min(t1, time.time_ns()), t0)

    @app.get("/api/v1/oee", tags=["metrics"], dependencies=READ)
    def get_oee(
        scope: Annotated[str, Query(description="asset id, e.g. acme/plant1/machining/line1")],
        start: Annotated[str, Query(description="window start, ISO 8601 (UTC if no zone)")],
        end: Annotated[str, Query(description="window end, ISO 8601 (UTC if no zone)")],
    ) -> dict[str, Any]:
        """OEE with availability, performance and quality for one asset and window.

        Times and counts are summed over the equipment under the asset and the
        ratios recomputed from the sums. A ratio is null when its denominator is
        zero. The window end is clipped to now.
        """
        asset, t0, t1 = resolve(scope, start, end)
        result = oee.compute(state["reader"], registry.equipment_under(asset), t0, t1, stale_ns,
                             steps(t0, t1))
        return {"scope": asset.id, "level": asset.level, "start": iso(t0), "end": iso(t1),
                **result}

    @app.get("/api/v1/losses", tags=["metrics"], dependencies=READ)
    def get_losses(
        scope: Annotated[str, Query(description="asset id, e.g. acme/plant1/machining/line1")],
        start: Annotated[str, Query(description="window start, ISO 8601 (UTC if no zone)")],
        end: Annotated[str, Query(description="window end, ISO 8601 (UTC if no zone)")],
        small_stop_s: Annotated[float | None, Query(
            ge=0, le=86400, description="small-stop threshold; default from the config")] = None,
        startup_s: Annotated[float | None, Query(
            ge=0, le=86400, description="start-up window after setups; default from config")
        ] = None,
    ) -> dict[str, Any]:
        """The six big losses in seconds (summing to PBT minus fully productive time),
        small stops, MTBF, MTTR, failure count, technical efficiency, setup and scrap
        ratios, with the OEE they explain. See METRICS.md for every formula."""
        asset, t0, t1 = resolve(scope, start, end)
        small = cfg.oee.small_stop_s if small_stop_s is None else small_stop_s
        startup = cfg.oee.startup_s if startup_s is None else startup_s
        totals = oee.totals_of(state["reader"], registry.equipment_under(asset), t0, t1,
                               stale_ns, int(small * 1e9), int(startup * 1e9),
                               steps(t0, t1 + int(small * 1e9)))
        return {"scope": asset.id, "level": asset.level, "start": iso(t0), "end": iso(t1),
                "small_stop_threshold_s": small, "startup_window_s": startup,
                **losses.report_losses(totals)}

    @app.get("/api/v1/trend", tags=["metrics"], dependencies=READ)
    def get_trend(
        scope: Annotated[str, Query(description="asset id, e.g. acme/plant1/machining/line1")],
        start: Annotated[str, Query(description="window start, ISO 8601 (UTC if no zone)")],
        end: Annotated[str, Query(description="window end, ISO 8601 (UTC if no zone)")],
        granularity: Annotated[Granularity, Query(
            description="1h, day (calendar's zone) or shift (needs a calendar)")] = "1h",
    ) -> dict[str, Any]:
        """OEE, its parts and the time per state for each bucket of the window; buckets
        are clipped to the window and rolled up like /oee (sums, then ratios)."""
        asset, t0, t1 = resolve(scope, start, end)
        try:
            rows = trend.trend(state["reader"], registry.equipment_under(asset), t0, t1,
                               stale_ns, granularity, cfg.oee.calendar)
        except trend.TrendError as exc:
            raise HTTPException(422, str(exc)) from None
        for r in rows:
            r["start"], r["end"] = iso(r["start"]), iso(r["end"])
        return {"scope": asset.id, "level": asset.level, "granularity": granularity,
                "start": iso(t0), "end": iso(t1), "buckets": rows}

    @app.get("/api/v1/timeline", tags=["metrics"], dependencies=READ)
    def get_timeline(
        scope: Annotated[str, Query(description="asset id; all equipment under it")],
        start: Annotated[str, Query(description="window start, ISO 8601 (UTC if no zone)")],
        end: Annotated[str, Query(description="window end, ISO 8601 (UTC if no zone)")],
    ) -> dict[str, Any]:
        """The state timeline (Gantt) of each piece of equipment under ``scope``:
        intervals covering the window, neighbours in different states, read like
        /oee (stale data and time before the first sample OFFLINE, the shift calendar
        laid over), so their time per state equals /oee's ``times_s``."""
        asset, t0, t1 = resolve(scope, start, end)
        rows = timeline.timeline(state["reader"], registry.equipment_under(asset), t0, t1,
                                 stale_ns, steps(t0, t1))
        if sum(len(iv) for _, iv in rows) > MAX_INTERVALS:
            raise HTTPException(422, f"more than {MAX_INTERVALS} state intervals; "
                                     "shorten the window or pick a smaller scope")
        return {"scope": asset.id, "level": asset.level, "start": iso(t0), "end": iso(t1),
                "equipment": [{"id": a.id, "name": a.name, "intervals": [
                    {"state": s, "start": iso(b), "end": iso(e)} for b, e, s in iv]}
                    for a, iv in rows]}

    @app.get("/api/v1/digitalization", tags=["digitalization"], dependencies=READ)
    def get_digitalization(
        scope: Annotated[str, Query(description="asset id: cluster, enterprise, site, ...")],
        networked_window_s: Annotated[float | None, Query(
            gt=0, le=MAX_WINDOW_S, description="networked = data seen this recently; "
                                               "default from the config")] = None,
    ) -> dict[str, Any]:
        """Equipment digitalization, networking and key-process NC rates of a scope:
        pooled over its equipment; above enterprises also per enterprise and the
        labelled mean of enterprise rates."""
        asset = get_asset(scope)
        window = cfg.digitalization.networked_window_s if networked_window_s is None \
            else networked_window_s
        doc = digitalization.indicators(registry, asset, state["reader"].last_seen(),
                                        time.time_ns(), int(window * 1e9))
        return {"scope": asset.id, "level": asset.level, "networked_window_s": window, **doc}

    @app.get("/api/v1/compare", tags=["digitalization"], dependencies=READ)
    def compare(
        scope: Annotated[str, Query(description="cluster id: its enterprises are ranked")],
        metric: Annotated[CompareMetric, Query(description="indicator to rank on")],
        start: Annotated[str | None, Query(description="window start (metric=oee)")] = None,
        end: Annotated[str | None, Query(description="window end (metric=oee)")] = None,
    ) -> dict[str, Any]:
        """Enterprises of a cluster ranked on one indicator (best first), with the
        pooled and mean-of-enterprise figures and the published reference figures."""
        asset = get_asset(scope)
        if asset.level != "cluster":
            raise HTTPException(422, f"scope {scope!r} is a {asset.level}; compare ranks the "
                                     f"enterprises of a cluster: use scope={registry.root.id}")
        m = metric.value
        if m == "oee":
            if start is None or end is None:
                raise HTTPException(422, "metric=oee needs start and end (ISO 8601)")
            _, t0, t1 = resolve(scope, start, end)
            rows = []
            for e in registry.enterprises():
                r = oee.compute(state["reader"], registry.equipment_under(e), t0, t1, stale_ns,
                                steps(t0, t1))
                rows.append({"id": e.id, "name": e.name, "oee": r["oee"]})
            cluster = oee.compute(state["reader"], registry.equipment_under(asset), t0, t1,
                                  stale_ns, steps(t0, t1))["oee"]
            summary = {"pooled": cluster,
                       "mean_of_enterprise_rates": digitalization._mean(
                           [r["oee"] for r in rows])}
        else:
            doc = digitalization.indicators(
                registry, asset, state["reader"].last_seen(), time.time_ns(),
                int(cfg.digitalization.networked_window_s * 1e9))
            rows = [{"id": e["id"], "name": e["name"], m: e[m]}
                    for e in doc.get("enterprises", [])]
            summary = {"pooled": doc["pooled"][m],
                       "mean_of_enterprise_rates": doc.get(
                           "mean_of_enterprise_rates", {}).get(m)}
        return {"scope": asset.id, "metric": m, **summary,
                "enterprises": digitalization.rank(rows, m),
                "published": digitalization.published(m)}

    @app.post("/api/v1/registry/reload", tags=["assets"], dependencies=ADMIN)
    def reload_registry() -> dict[str, Any]:
        """Re-read the registry file (admin scope); the old one stays on errors."""
        try:
            registry.replace(Registry.load(registry_path))
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"equipment": len(registry.equipment_under(registry.root))}

    @app.get("/api/v1/state", tags=["metrics"], dependencies=READ)
    def get_state(
        scope: Annotated[str, Query(description="asset id; all equipment under it")],
    ) -> list[dict[str, Any]]:
        """The current state of each piece of equipment under ``scope``.

        ``state`` is OFFLINE when the newest state sample is older than
        ``stale_after_s`` or there is none.
        """
        return current_states(get_asset(scope), time.time_ns())

    def current_states(asset: Asset, now: int) -> list[dict[str, Any]]:
        out = []
        for eq in registry.equipment_under(asset):
            assert eq.device is not None
            s = state["reader"].read(eq.device, "state", now, now + 1)
            last = int(s.ts[-1]) if len(s.ts) else None
            fresh = last is not None and now - last <= stale_ns
            out.append({"id": eq.id, "name": eq.name,
                        "state": (s.text[-1] or "OFFLINE") if fresh else "OFFLINE",
                        "since": iso(last) if last is not None else None})
        return out

    def current_shift(now: int) -> tuple[str, int]:
        """(label, start) of the shift holding ``now``; without a calendar the UTC day."""
        if cfg.oee.calendar is not None:
            for name, s, e, _ in calendar.shifts(cfg.oee.calendar, now - 1, now + 1):
                if s <= now < e:
                    return name, s
            return "no shift", now
        day = now - now % (86400 * 1_000_000_000)
        return "day", day

    def snapshot(asset: Asset) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        now = time.time_ns()
        label, start = current_shift(now)
        doc: dict[str, Any] = {"shift": label, "start": iso(start), "oee": None}
        if now > start:
            r = oee.compute(state["reader"], registry.equipment_under(asset), start, now,
                            stale_ns, steps(start, now))
            doc.update({k: r[k] for k in ("availability", "performance", "quality", "oee")})
        return current_states(asset, now), doc

    @app.get("/api/v1/stream", tags=["metrics"], dependencies=READ,
             response_class=StreamingResponse)
    async def stream(
        scope: Annotated[str, Query(description="asset id; all equipment under it")],
        interval_s: Annotated[float, Query(ge=0.2, le=60, description="poll period")] = 2.0,
        max_events: Annotated[int | None, Query(ge=1, le=100000,
                                                description="end after this many")] = None,
    ) -> StreamingResponse:
        """Server-Sent Events: ``state`` (each equipment's state) and ``oee`` (the current
        shift's OEE, 4 decimals) whenever they change; states are checked every
        ``interval_s``, the OEE every ``interval_s`` but at most every 5 s."""
        asset = get_asset(scope)

        async def events() -> AsyncIterator[str]:
            sent, last = 0, {}
            shift: dict[str, Any] = {}
            shift_at = float("-inf")
            while max_events is None or sent < max_events:
                if time.monotonic() - shift_at >= OEE_EVERY_S:  # the costlier part
                    shift_at = time.monotonic()
                    states, shift = await asyncio.to_thread(snapshot, asset)
                    shift = {k: round(v, 4) if isinstance(v, float) else v
                             for k, v in shift.items()}
                else:
                    states = await asyncio.to_thread(current_states, asset, time.time_ns())
                for kind, doc in (("state", states), ("oee", shift)):
                    if last.get(kind) != doc and (max_events is None or sent < max_events):
                        last[kind] = doc
                        sent += 1
                        yield f"event: {kind}\ndata: {json.dumps(doc)}\n\n"
                if max_events is None or sent < max_events:
                    await asyncio.sleep(interval_s)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def run(config_path: Path | str) -> None:
    import uvicorn

    config_path = Path(config_path)
    cfg = load_config(config_path, ServerConfig)
    app = create_app(cfg, config_path.parent)
    log.info("serving on http://%s:%d", cfg.http.host, cfg.http.port)
    uvicorn.run(app, host=cfg.http.host, port=cfg.http.port, log_level="warning")
