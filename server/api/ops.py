"""``/healthz``: liveness for probes and ``shopfloor up`` (no token needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shopfloor import __version__
from shopfloor.server.api.deps import ConfigDep

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz(config: ConfigDep) -> dict[str, Any]:
    return {"status": "ok", "version": __version__,
            "store": "influxdb" if config.store.influxdb else "embedded"}
