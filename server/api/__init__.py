"""The REST API as thin ``APIRouter`` modules; ``app.create_app`` includes them.

- ``deps``: what the routes share, as ``Annotated`` dependencies (config, registry,
  store reader, the ``Window`` of scope/start/end, its ``MetricsQuery``);
- ``ops`` (``/healthz``, no token), ``assets``, ``metrics`` (``/oee``, ``/losses``,
  ``/trend``, ``/timeline``), ``digitalization`` (``/digitalization``, ``/compare``),
  ``live`` (``/state``, ``/stream``), ``federation`` (``/federation``,
  ``/federation/aggregates``): the ``read`` scope;
- ``admin`` (``/registry/reload``): the ``admin`` scope;
- ``stops`` (``/stops``, ``/pareto``, ``/reasons``), ``counts`` (``/counts``),
  ``plans`` (``/orders``, ``/targets``), ``alerts`` (``/alerts``, ``/alert-rules``):
  the ``read`` scope, and
  each write checks the token's role (``people``, ``server/roles.py``).

A new route goes into the module of its kind, or a new module whose ``router`` is
added to ``ROUTERS`` with its scope; it takes what it needs from ``deps`` and leaves
the computing to the modules beside ``api/`` (``oee``, ``trend``, ...).
"""

from __future__ import annotations

from fastapi import APIRouter

from shopfloor.server.api import (
    admin,
    alerts,
    assets,
    counts,
    digitalization,
    federation,
    live,
    metrics,
    ops,
    plans,
    stops,
)
from shopfloor.server.auth import Scope

# (router, the token scope its routes need or None), in the order of the OpenAPI document
ROUTERS: list[tuple[APIRouter, Scope | None]] = [
    (ops.router, None),
    (assets.router, "read"),
    (metrics.router, "read"),
    (digitalization.router, "read"),
    (admin.router, "admin"),
    (live.router, "read"),
    (federation.router, "read"),
    (stops.router, "read"),
    (counts.router, "read"),
    (plans.router, "read"),
    (alerts.router, "read"),
]
