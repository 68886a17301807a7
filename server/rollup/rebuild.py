"""``shopfloor rollup rebuild --config server.yaml``: recompute roll-ups from raw samples
(after a change of the small-stop threshold, calendar or cycle times, or to fill them in
for data written before they existed), with progress on stderr."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from shopfloor.config import ConfigError, load_config
from shopfloor.server.config import ServerConfig
from shopfloor.server.registry import Registry
from shopfloor.storage import open_reader

from . import open_rollups
from .buckets import DAY, HOUR, MINUTE
from .plan import floor_to


def run_rebuild(config_path: Path | str, machines: list[str] | None = None) -> int:
    config_path = Path(config_path)
    cfg = load_config(config_path, ServerConfig)
    if not cfg.rollup.enabled:
        raise ConfigError(f"{config_path}: rollup.enabled is false; nothing to rebuild")
    path = cfg.registry if cfg.registry.is_absolute() else config_path.parent / cfg.registry
    registry = Registry.load(path)
    everything = registry.equipment_under(registry.root)
    if machines:
        unknown = [m for m in machines if registry.get(m) not in everything]
        if unknown:
            raise ConfigError(f"not equipment in {path}: {', '.join(unknown)}")
        assets = [a for a in everything if a.id in machines]
    else:
        assets = everything
    reader = open_reader(cfg.store)
    rollups, maintainer = open_rollups(cfg, reader, registry, maintain=True)
    assert rollups is not None and maintainer is not None
    now = time.time_ns()
    first, raw_from = reader.first_seen(), reader.raw_from()
    target = floor_to(now - maintainer.margin_ns, MINUTE)
    span = sum(max(target - max(floor_to(first.get(a.id, target), DAY), raw_from or 0), 0)
               for a in assets)
    t = time.perf_counter()
    with tqdm(total=round(span / HOUR), unit="h", desc="rollup rebuild", file=sys.stderr,
              disable=None) as bar:
        minutes = maintainer.rebuild(assets, now, progress=lambda ns: bar.update(ns / HOUR))
    print(f"rebuilt {len(assets)} machines: {minutes} minute buckets in "
          f"{time.perf_counter() - t:.1f}s")
    rollups.buckets.close()
    getattr(reader, "close", lambda: None)()
    return 0
