"""``/assets``: the asset tree the other routes' ``scope`` ids come from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shopfloor.server.api.deps import RegistryDep

router = APIRouter(prefix="/api/v1", tags=["assets"])


@router.get("/assets")
def assets(registry: RegistryDep) -> dict[str, Any]:
    """The asset tree: cluster, enterprises, sites, workshops, lines, equipment."""
    return registry.root.to_json()
