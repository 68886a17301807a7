"""Prometheus metrics of the edge agent on ``http://{metrics.host}:{metrics.port}/metrics``.

``AgentMetrics(agent, cfg).start()`` / ``.stop()``. The agent's state is owned by its
event loop (and its SQLite outbox by that thread), so a task on the loop takes a
snapshot every ``refresh_s`` and the HTTP thread only reads the snapshot. Publish latency
is the time from a batch's commit to the outbox to its PUBACK: ``PublishLatency`` is the
outbox's listener (``Outbox(..., listener=metrics.publish_latency)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .config import MetricsConfig

if TYPE_CHECKING:
    from .agent import Agent

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class _Snapshot(Collector):
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        v = self.values
        if not v:
            return
        reads = CounterMetricFamily("shopfloor_edge_device_reads",
                                    "successful reads (Modbus requests, OPC UA items/nodes)",
                                    labels=["device", "protocol"])
        errors = CounterMetricFamily("shopfloor_edge_device_errors",
                                     "failed reads, connections and subscriptions",
                                     labels=["device", "protocol"])
        up = GaugeMetricFamily("shopfloor_edge_device_up", "1 while the device is connected",
                               labels=["device", "protocol"])
        for dev, proto, r, e, u in v["devices"]:
            reads.add_metric([dev, proto], r)
            errors.add_metric([dev, proto], e)
            up.add_metric([dev, proto], u)
        yield from (reads, errors, up)
        yield CounterMetricFamily("shopfloor_edge_samples", "samples read", value=v["samples"])
        yield GaugeMetricFamily("shopfloor_edge_samples_per_second",
                                "samples read per second over the last refresh period",
                                value=v["samples_per_s"])
        yield GaugeMetricFamily("shopfloor_edge_outbox_depth", "samples waiting for a PUBACK",
                                value=v["depth"])
        yield GaugeMetricFamily("shopfloor_edge_outbox_age_seconds",
                                "age of the oldest unacknowledged batch (0: none)",
                                value=v["age"])
        yield CounterMetricFamily("shopfloor_edge_outbox_dropped",
                                  "samples dropped over outbox.max_bytes", value=v["dropped"])


class PublishLatency:
    """Outbox commit to PUBACK per batch, as the outbox reports them (``OutboxListener``)."""

    def __init__(self, registry: CollectorRegistry):
        self.histogram = Histogram("shopfloor_edge_publish_latency_seconds",
                                   "outbox commit to PUBACK, per batch",
                                   buckets=LATENCY_BUCKETS, registry=registry)
        self.committed_at: dict[int, float] = {}  # seq -> monotonic commit time

    def committed(self, seq: int) -> None:
        self.committed_at[seq] = time.monotonic()

    def acknowledged(self, seq: int) -> None:
        t0 = self.committed_at.pop(seq, None)
        if t0 is not None:
            self.histogram.observe(time.monotonic() - t0)

    def forget_before(self, oldest: int | None) -> None:
        """Drop commits older than the oldest pending batch (acked elsewhere, or dropped
        over max_bytes); None: nothing is pending."""
        for seq in [s for s in self.committed_at if oldest is None or s < oldest]:
            del self.committed_at[seq]


class AgentMetrics:
    def __init__(self, agent: Agent, cfg: MetricsConfig):
        self.agent, self.cfg = agent, cfg
        self.registry = CollectorRegistry()
        self.snapshot = _Snapshot()
        self.registry.register(self.snapshot)
        self.publish_latency = PublishLatency(self.registry)
        self._started = time.monotonic()
        self._last = (self._started, 0)
        self._task: asyncio.Task[None] | None = None
        self._server: Any = None
        self.port = cfg.port

    def start(self) -> None:
        """Serve ``/metrics`` (the agent's outbox is open: its listener is ours)."""
        self.refresh()
        self._server, _ = start_http_server(self.cfg.port, self.cfg.host, self.registry)
        self.port = self._server.server_port
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._server is not None:
            await asyncio.to_thread(self._server.shutdown)
            self._server.server_close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.refresh_s)
            with contextlib.suppress(Exception):  # metrics never take the agent down
                self.refresh()

    def refresh(self) -> None:
        """Take the snapshot (on the event loop, which owns the agent and the outbox)."""
        agent, ob, now = self.agent, self.agent.outbox, time.monotonic()
        devices = []
        for dev in agent.config.devices:
            drv = agent.drivers.get(dev.id)
            if drv is not None:
                st = drv.stats()
                devices.append((dev.id, dev.protocol, st.reads, st.errors, 1 if st.up else 0))
        oldest = None
        if ob is not None:
            for dev_id in agent.publishers:
                pending = ob.pending(dev_id, limit=1)
                if pending:
                    oldest = pending[0].seq if oldest is None else min(oldest, pending[0].seq)
        latency = self.publish_latency
        latency.forget_before(oldest)
        age = 0.0
        if oldest is not None:  # a batch from before this start: at least our uptime
            age = now - latency.committed_at.get(oldest, self._started)
        t_last, n_last = self._last
        n = agent.samples_read
        self._last = (now, n)
        self.snapshot.values = {
            "devices": devices, "samples": n,
            "samples_per_s": (n - n_last) / (now - t_last) if now > t_last else 0.0,
            "depth": ob.depth if ob is not None else 0, "age": age,
            "dropped": ob.dropped if ob is not None else 0,
        }
