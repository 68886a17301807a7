"""The gateway's counters: ``GatewayStats``, a snapshot from ``Gateway.stats()``.

Logged every ``stats_interval_s`` (``line()``) and served as Prometheus metrics
(``metrics.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GatewayStats:
    messages: int = 0  # data messages received (valid or not)
    messages_done: int = 0  # of those, written (or rejected) and acknowledged: settled
    samples_received: int = 0
    samples_stored: int = 0  # written to every store and acknowledged
    batches_written: int = 0
    rejects: dict[str, int] = field(default_factory=dict)  # reason -> messages
    write_errors: int = 0  # failed write attempts (each retried)
    dead_letters: int = 0
    last_batch_latency_s: float | None = None  # oldest message's arrival -> ack
    last_batch_samples: int = 0
    queue_depth: int = 0
    connected: bool = False
    gaps_open: int = 0  # seq gaps not (yet) filled
    gaps_seen: int = 0
    replay_requests: int = 0
    seqs_lost: int = 0  # seqs given up on after every replay attempt
    clock_steps: int = 0  # edge clock offsets recorded (stepped off, or back in step)
    clock_offsets_s: dict[str, float] = field(default_factory=dict)  # agent -> offset now
    samples_expired: int = 0  # deleted from the embedded store by retention
    retention_passes: int = 0  # completed retention passes

    def line(self) -> str:
        lat = "-" if self.last_batch_latency_s is None else \
            f"{self.last_batch_latency_s * 1e3:.0f}ms"
        rejects = ",".join(f"{k}={v}" for k, v in sorted(self.rejects.items())) or "0"
        return (f"messages={self.messages} done={self.messages_done} "
                f"samples_stored={self.samples_stored} "
                f"batches={self.batches_written} last_batch={self.last_batch_samples}/{lat} "
                f"queue={self.queue_depth} rejects={rejects} write_errors={self.write_errors} "
                f"gaps_open={self.gaps_open} replays={self.replay_requests} "
                f"seqs_lost={self.seqs_lost} expired={self.samples_expired} "
                f"clock_steps={self.clock_steps} "
                f"connected={self.connected}")
