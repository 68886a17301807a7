"""The enterprise server's federation: which periods a round covers, and the uplink the
app's lifespan starts (``open_uplink``) when the config has a ``federation:`` section."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from shopfloor.server.config import ServerConfig
from shopfloor.server.registry import Registry
from shopfloor.server.rollup.source import QuantitySource
from shopfloor.times import NS

from . import periods
from .aggregates import Aggregate, aggregate
from .uplink import Outbox, Uplink


def zone(cfg: ServerConfig) -> ZoneInfo:
    """Periods are local days and months of the shift calendar's zone (UTC without one)."""
    return ZoneInfo(cfg.oee.calendar.timezone if cfg.oee.calendar else "UTC")


def aggregates(cfg: ServerConfig, registry: Registry, source: QuantitySource,
               kind: str, first: periods.Period, last: periods.Period,
               now: int | None = None) -> list[Aggregate]:
    """The aggregates of every period of ``kind`` from ``first`` to ``last``."""
    now = time.time_ns() if now is None else now
    return [aggregate(cfg, registry, source, p, zone(cfg), now)
            for p in periods.between(kind, first, last)]


def recent(cfg: ServerConfig, registry: Registry, source: QuantitySource, days: int
           ) -> list[Aggregate]:
    """The aggregates of every configured period kind touching the last ``days`` days."""
    assert cfg.federation is not None
    now, tz = time.time_ns(), zone(cfg)
    out = []
    for kind in cfg.federation.periods:
        span = periods.covering(kind, now - days * 86400 * NS, now, tz)
        out += [aggregate(cfg, registry, source, p, tz, now) for p in span]
    return out


def open_uplink(cfg: ServerConfig, base_dir: Path, registry: Registry,
                source: Callable[[], QuantitySource]) -> Uplink | None:
    """The uplink of this config (None without ``federation:``), not started; its outbox
    path is relative to ``base_dir``."""
    fed = cfg.federation
    if fed is None:
        return None
    path = fed.queue if fed.queue.is_absolute() else base_dir / fed.queue
    return Uplink(fed, Outbox(path), lambda days: recent(cfg, registry, source(), days))
