"""Prometheus metrics of a gateway (``metrics: {host, port}`` in its config; off by default).

Counters and gauges are read from ``Gateway.stats()`` at scrape time; batch latency (oldest
message's arrival -> acknowledged) is a histogram observed per written batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shopfloor.config import MetricsEndpoint

from .stats import GatewayStats

P = "shopfloor_gateway_"


class _StatsCollector(Collector):
    def __init__(self, stats: Callable[[], GatewayStats]):
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        s = self._stats()
        for name, value, doc in (
                ("messages", s.messages, "data messages received (valid or not)"),
                ("messages_done", s.messages_done,
                 "data messages written (or rejected) and acknowledged"),
                ("samples_in", s.samples_received, "samples received and decoded"),
                ("samples_out", s.samples_stored, "samples written to every store and acked"),
                ("batches", s.batches_written, "batches written"),
                ("write_errors", s.write_errors, "failed store writes (each retried)"),
                ("dead_letters", s.dead_letters, "messages published to the dead-letter topic"),
                ("gaps", s.gaps_seen, "seq gaps opened"),
                ("replay_requests", s.replay_requests, "replay requests sent to edge agents"),
                ("seqs_lost", s.seqs_lost, "seqs given up on after every replay attempt"),
                ("clock_steps", s.clock_steps,
                 "edge clock offsets recorded (stepped off, or back in step)"),
                ("samples_expired", s.samples_expired,
                 "samples deleted from the embedded store by retention")):
            yield CounterMetricFamily(P + name, doc, value=value)
        rejects = CounterMetricFamily(P + "rejects", "rejected messages by reason",
                                      labels=["reason"])
        for reason, n in sorted(s.rejects.items()):
            rejects.add_metric([reason], n)
        yield rejects
        yield GaugeMetricFamily(P + "queue_depth", "decoded messages waiting to be written",
                                value=s.queue_depth)
        yield GaugeMetricFamily(P + "gaps_open", "seq gaps not filled yet", value=s.gaps_open)
        yield GaugeMetricFamily(P + "connected", "1 when connected to the broker",
                                value=int(s.connected))


class GatewayMetrics:
    def __init__(self, cfg: MetricsEndpoint, stats: Callable[[], GatewayStats]):
        self.cfg = cfg
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(stats))
        self.batch_latency = Histogram(
            P + "batch_latency_seconds", "oldest message's arrival -> batch acknowledged",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30), registry=self.registry)
        self._server: Any = None
        self.port = cfg.port  # the bound port once started (``port: 0``: any free one)

    def start(self) -> None:
        self._server, _thread = start_http_server(self.cfg.port, self.cfg.host,
                                                  registry=self.registry)
        self.port = self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
