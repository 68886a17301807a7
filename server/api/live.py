"""Live routes: ``/state`` (each machine's current state) and ``/stream`` (the same and
the current shift's OEE as Server-Sent Events, whenever they change)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from shopfloor.server import calendar, oee
from shopfloor.server.api.deps import ConfigDep, ReaderDep, RegistryDep, SourceDep, asset_of
from shopfloor.server.config import ServerConfig
from shopfloor.server.oee import MetricsQuery
from shopfloor.server.registry import Asset
from shopfloor.server.rollup.source import QuantitySource
from shopfloor.storage import SampleReader
from shopfloor.times import NS, iso, seconds_ns

OEE_EVERY_S = 5.0  # the stream recomputes the shift OEE at most this often

router = APIRouter(prefix="/api/v1", tags=["metrics"])


def current_states(reader: SampleReader, equipment: list[Asset], stale_ns: int,
                   now: int) -> list[dict[str, Any]]:
    """Each machine's newest state, OFFLINE when older than ``stale_ns`` or missing."""
    out = []
    for eq in equipment:
        assert eq.device is not None
        s = reader.read(eq.device, "state", now, now + 1)
        last = int(s.ts[-1]) if len(s.ts) else None
        fresh = last is not None and now - last <= stale_ns
        out.append({"id": eq.id, "name": eq.name,
                    "state": (s.text[-1] or "OFFLINE") if fresh else "OFFLINE",
                    "since": iso(last) if last is not None else None})
    return out


def current_shift(cal: calendar.CalendarConfig | None, now: int) -> tuple[str, int]:
    """(label, start) of the shift holding ``now``; without a calendar the UTC day."""
    if cal is not None:
        for name, s, e, _ in calendar.shifts(cal, now - 1, now + 1):
            if s <= now < e:
                return name, s
        return "no shift", now
    day = now - now % (86400 * NS)
    return "day", day


def snapshot(config: ServerConfig, source: QuantitySource, equipment: list[Asset]
             ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The machines' current states and the current shift's OEE so far."""
    now = time.time_ns()
    label, start = current_shift(config.oee.calendar, now)
    doc: dict[str, Any] = {"shift": label, "start": iso(start), "oee": None}
    if now > start:
        r = oee.compute(source, equipment, MetricsQuery.of(config.oee, start, now))
        doc.update({k: r[k] for k in ("availability", "performance", "quality", "oee")})
    return current_states(source.reader, equipment, seconds_ns(config.oee.stale_after_s),
                          now), doc


@router.get("/state")
def get_state(
    scope: Annotated[str, Query(description="asset id; all equipment under it")],
    config: ConfigDep, reader: ReaderDep, registry: RegistryDep,
) -> list[dict[str, Any]]:
    """The current state of each piece of equipment under ``scope``.

    ``state`` is OFFLINE when the newest state sample is older than
    ``stale_after_s`` or there is none.
    """
    equipment = registry.equipment_under(asset_of(registry, scope))
    return current_states(reader, equipment, seconds_ns(config.oee.stale_after_s),
                          time.time_ns())


@router.get("/stream", response_class=StreamingResponse)
async def stream(
    scope: Annotated[str, Query(description="asset id; all equipment under it")],
    config: ConfigDep, source: SourceDep, registry: RegistryDep,
    interval_s: Annotated[float, Query(ge=0.2, le=60, description="poll period")] = 2.0,
    max_events: Annotated[int | None, Query(ge=1, le=100000,
                                            description="end after this many")] = None,
) -> StreamingResponse:
    """Server-Sent Events: ``state`` (each equipment's state) and ``oee`` (the current
    shift's OEE, 4 decimals) whenever they change; states are checked every
    ``interval_s``, the OEE every ``interval_s`` but at most every 5 s."""
    equipment = registry.equipment_under(asset_of(registry, scope))
    stale_ns = seconds_ns(config.oee.stale_after_s)

    async def events() -> AsyncIterator[str]:
        sent, last = 0, {}
        shift: dict[str, Any] = {}
        shift_at = float("-inf")
        while max_events is None or sent < max_events:
            if time.monotonic() - shift_at >= OEE_EVERY_S:  # the costlier part
                shift_at = time.monotonic()
                states, shift = await asyncio.to_thread(snapshot, config, source, equipment)
                shift = {k: round(v, 4) if isinstance(v, float) else v
                         for k, v in shift.items()}
            else:
                states = await asyncio.to_thread(current_states, source.reader, equipment,
                                                 stale_ns, time.time_ns())
            for kind, doc in (("state", states), ("oee", shift)):
                if last.get(kind) != doc and (max_events is None or sent < max_events):
                    last[kind] = doc
                    sent += 1
                    yield f"event: {kind}\ndata: {json.dumps(doc)}\n\n"
            if max_events is None or sent < max_events:
                await asyncio.sleep(interval_s)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})
