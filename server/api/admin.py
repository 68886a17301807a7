"""Routes that change what the server serves (``admin`` scope): ``/registry/reload``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from shopfloor.config import ConfigError
from shopfloor.server.api.deps import StateDep
from shopfloor.server.registry import Registry

router = APIRouter(prefix="/api/v1", tags=["assets"])


@router.post("/registry/reload")
def reload_registry(state: StateDep) -> dict[str, Any]:
    """Re-read the registry file (admin scope); the old one stays on errors."""
    registry = state.registry
    try:
        registry.replace(Registry.load(state.registry_path))
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"equipment": len(registry.equipment_under(registry.root))}
