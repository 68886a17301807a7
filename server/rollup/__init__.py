"""Roll-ups: each machine's additive metric quantities per minute, hour and day, kept
equal to the raw computation so that a month of a cluster is a sum of a few thousand
buckets (DESIGN.md "Roll-ups").

- ``quantities``: what is computed (``compute``) and from which samples (``read_inputs``);
- ``buckets``: where buckets live (``BucketStore``: ``SqliteBuckets``, ``InfluxBuckets``);
- ``maintainer``: keeps them up to date from the store's write log;
- ``plan``: a span as whole buckets and raw edges; ``source``: what metrics read.

``open_rollups(config, reader, registry)`` is the entry point of the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shopfloor.server.config import ServerConfig
    from shopfloor.server.registry import Registry
    from shopfloor.storage import SampleReader

    from .maintainer import Maintainer
    from .source import Rollups


def open_rollups(cfg: ServerConfig, reader: SampleReader, registry: Registry,
                 maintain: bool | None = None) -> tuple[Rollups | None, Maintainer | None]:
    """The roll-ups of this config's store and definition, and (``rollup.maintain`` unless
    ``maintain`` says) a maintainer to start; (None, None) when they are disabled."""
    from shopfloor.server.oee import MetricsQuery

    from .buckets import SqliteBuckets
    from .maintainer import Maintainer
    from .source import Rollups

    rc = cfg.rollup
    if not rc.enabled:
        return None, None
    d = MetricsQuery.of(cfg.oee, 0, 0).definition
    if cfg.store.influxdb is not None:
        from .influx_buckets import InfluxBuckets

        buckets = InfluxBuckets(cfg.store.influxdb, d.fingerprint())
        overlap = int(5 * 60e9)  # the writers' clocks order the InfluxDB write log
    else:
        assert cfg.store.embedded is not None
        buckets, overlap = SqliteBuckets(cfg.store.embedded.path, d.fingerprint()), 0
    rollups = Rollups(buckets, reader, d, live_s=3 * rc.interval_s + 30, overlap_ns=overlap,
                      minute_ns=int(rc.minute_days * 86400e9))
    maintainer = None
    if rc.maintain if maintain is None else maintain:
        maintainer = Maintainer(reader, reader, buckets,
                                lambda: registry.equipment_under(registry.root), d,
                                name=rc.name, settle_s=rc.settle_s, interval_s=rc.interval_s,
                                overlap_ns=overlap, minute_days=rc.minute_days,
                                backfill_days=rc.backfill_days)
    return rollups, maintainer
