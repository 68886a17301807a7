"""What the routes share, declared once as ``Annotated`` dependencies: the app's
config, registry and store reader (``ServerState``), and the asset and time window
a request names (``Window``: 404 for an unknown asset, 422 for a time that is not
ISO 8601, an end not after the start or a window over 366 days; the end clipped
to now)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request

from shopfloor.server.config import OeeConfig, ServerConfig
from shopfloor.server.federation.uplink import Uplink
from shopfloor.server.oee import MetricsQuery
from shopfloor.server.operations.service import Operations
from shopfloor.server.registry import Asset, Registry
from shopfloor.server.rollup.source import QuantitySource, Rollups
from shopfloor.storage import SampleReader
from shopfloor.times import NS, datetime_ns, iso

MAX_WINDOW_S = 366 * 24 * 3600


@dataclass
class ServerState:
    """What one app serves from; ``reader`` (and ``rollups``, when enabled) are open while
    the app's lifespan runs."""

    config: ServerConfig
    registry: Registry
    registry_path: Path
    reader: SampleReader | None = None
    rollups: Rollups | None = None
    uplink: Uplink | None = None  # with a ``federation:`` section, while the lifespan runs
    operations: Operations | None = None  # the operations database and alert thread

    @staticmethod
    def of(app: FastAPI) -> ServerState:
        return app.state.shopfloor

    def source(self) -> QuantitySource:
        """Where metrics read their quantities: the store, the roll-ups and the counts
        people entered; one per request (it says what it read)."""
        assert self.reader is not None, "the store is open while the app's lifespan runs"
        return QuantitySource(self.reader, self.rollups,
                              self.operations.counts if self.operations else None)


async def _state(request: Request) -> ServerState:
    return ServerState.of(request.app)


StateDep = Annotated[ServerState, Depends(_state)]


async def _config(state: StateDep) -> ServerConfig:
    return state.config


async def _registry(state: StateDep) -> Registry:
    return state.registry


async def _reader(state: StateDep) -> SampleReader:
    assert state.reader is not None, "the store is open while the app's lifespan runs"
    return state.reader


async def _source(state: StateDep) -> QuantitySource:
    return state.source()


ConfigDep = Annotated[ServerConfig, Depends(_config)]
RegistryDep = Annotated[Registry, Depends(_registry)]
ReaderDep = Annotated[SampleReader, Depends(_reader)]
SourceDep = Annotated[QuantitySource, Depends(_source)]


def parse_time(name: str, value: str) -> int:
    """ISO 8601 to ns since epoch; a time without a zone is taken as UTC. 422 otherwise."""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(422, f"{name}={value!r} is not an ISO 8601 time, "
                                 "e.g. 2026-11-22T08:00:00Z") from None
    return datetime_ns(dt)


def asset_of(registry: Registry, scope: str) -> Asset:
    """The asset with id ``scope``; 404 naming where the ids are listed otherwise."""
    asset = registry.get(scope)
    if asset is None:
        raise HTTPException(404, f"no asset {scope!r}; see /api/v1/assets for the ids")
    return asset


def machine_of(registry: Registry, machine: str) -> Asset:
    """The machine (equipment) with id ``machine``; 404 unknown, 422 not a machine."""
    asset = asset_of(registry, machine)
    if asset.level != "equipment":
        raise HTTPException(422, f"{machine!r} is not a machine")
    return asset


@dataclass(frozen=True)
class Window:
    """An asset, the equipment under it and the time window [t0, t1) a request asks
    about (t1 clipped to now), with the OEE config its ``query`` reads."""

    asset: Asset
    equipment: list[Asset]
    t0: int
    t1: int
    oee: OeeConfig

    @classmethod
    def of(cls, registry: Registry, oee: OeeConfig, scope: str, start: str, end: str
           ) -> Window:
        asset = asset_of(registry, scope)
        t0, t1 = parse_time("start", start), parse_time("end", end)
        if t1 <= t0:
            raise HTTPException(422, "end must be after start")
        if t1 - t0 > MAX_WINDOW_S * NS:
            raise HTTPException(422, "window longer than 366 days; ask for a shorter one")
        return cls(asset, registry.equipment_under(asset), t0,
                   max(min(t1, time.time_ns()), t0), oee)

    def query(self, small_stop_s: float | None = None, startup_s: float | None = None
              ) -> MetricsQuery:
        """The metrics query over this window (the config's loss thresholds unless
        /losses asks for others)."""
        return MetricsQuery.of(self.oee, self.t0, self.t1, small_stop_s, startup_s)

    def head(self) -> dict[str, Any]:
        """The fields every windowed answer starts with."""
        return {"scope": self.asset.id, "level": self.asset.level, "start": iso(self.t0),
                "end": iso(self.t1)}


async def _window(
    scope: Annotated[str, Query(description="asset id, e.g. acme/plant1/machining/line1")],
    start: Annotated[str, Query(description="window start, ISO 8601 (UTC if no zone)")],
    end: Annotated[str, Query(description="window end, ISO 8601 (UTC if no zone)")],
    registry: RegistryDep,
    config: ConfigDep,
) -> Window:
    return Window.of(registry, config.oee, scope, start, end)


WindowDep = Annotated[Window, Depends(_window)]
