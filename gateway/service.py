"""The gateway service: MQTT data messages -> decoded batches -> every configured store.

``run(config_path)`` is the entry point; ``Gateway`` is the service (``start``, ``stop``,
``stats``). Threads:
- paho's network loop runs ``_on_message``: decode (``contract.decode_data``), then put a
  ``Received`` on a bounded queue. A full queue blocks the loop, so the broker holds the
  rest (backpressure).
- the writer thread (``_writer_loop``) takes batches (``writer.collect``) up to
  ``batch.max_samples`` / ``batch.max_interval_s``, writes them to every store and then
  the seq ledger (``writer.BatchWriter``), and only then acknowledges the MQTT messages,
  in the order they arrived. A failed write is retried with capped backoff, never acked
  and never dropped. A message that breaks the contract (or that a store refuses as bad
  data) is counted, dead-lettered (``deadletter.py``) and acknowledged. The same thread
  runs retention (``retention.py``) and the gap checks (``completeness.py``).

Completeness: the seqs of the stored batches are recorded in the seq ledger as the
batch's last write (the embedded store, in the transaction of its samples; else in
memory); a gap that stays open for ``completeness.timeout_s`` is asked for again on the
agent's command topic, answered from the agent's outbox replay window.

The session is persistent (``clean_session=False``) and acks are manual, so whatever
was not acknowledged when the gateway stops or dies is redelivered by the broker;
the store's idempotent writes turn that into exactly-once.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt

from shopfloor.config import load_config
from shopfloor.contract import (
    BatchRejected,
    ContractError,
    DevicePath,
    decode_data,
    subscription,
)
from shopfloor.mqtt import describe, mqtt_client
from shopfloor.storage import MemoryLedger, SampleWriter, SeqLedger, Stores, open_stores

from .clock import ClockWatch
from .completeness import Completeness
from .config import GatewayConfig
from .deadletter import DEAD_LETTER_PAYLOAD_BYTES, publish_dead_letter
from .metrics import GatewayMetrics
from .retention import Retention
from .stats import GatewayStats
from .writer import BatchWriter, Received, collect

log = logging.getLogger(__name__)


class Gateway:
    """Start with ``start()``, stop with ``stop()`` (flushes, acks, disconnects).

    ``writers`` (tests, benchmarks) replace the configured stores: each is written in
    turn, then ``ledger`` (default: in memory); no retention runs then."""

    def __init__(self, cfg: GatewayConfig, writers: list[SampleWriter] | None = None,
                 ledger: SeqLedger | None = None):
        self.cfg = cfg
        self._queue: queue.Queue[Received] = queue.Queue(cfg.queue_max_messages)
        self._lock = threading.Lock()  # guards counters and the connection generation
        self._stats = GatewayStats()
        self._rejects: Counter[str] = Counter()
        self._gen = 0
        self._connected = False
        self._stopping = threading.Event()  # no new messages; drain what is queued
        self._give_up = threading.Event()  # stop retrying failed writes (leave unacked)
        self._subscribed = threading.Event()
        self._writer_thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self.topic_filter = subscription("data", cfg.share_group)
        self._completeness = Completeness(cfg.completeness)
        self._clock = ClockWatch(cfg.clock_step_s)
        self.gaps = self._completeness.tracker
        self.metrics = GatewayMetrics(cfg.metrics, self.stats) if cfg.metrics else None
        self._max_skew_ns = int(cfg.max_clock_skew_s * 1e9)
        self._accept = cfg.accepts if cfg.accept is not None else None
        self._batches: BatchWriter | None = None  # set with the stores (here or in start)
        self._retention: Retention | None = None
        if writers is not None:
            self._use(Stores(writers, ledger or MemoryLedger()))

    def _use(self, stores: Stores) -> None:
        self._batches = BatchWriter(stores, self.cfg.retry_max_s, self._give_up,
                                    on_retry=self._count_write_error,
                                    on_refused=self._store_rejected,
                                    on_recorded=self._completeness.seen)
        self._retention = Retention.of(stores, self.cfg.store)

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._batches is None:
            self._use(open_stores(self.cfg.store))
        assert self._batches is not None
        stores = self._batches.stores
        self._completeness.seen(stores.ledger.seq_ranges())
        if self.metrics is not None:
            self.metrics.start()
            log.info("metrics on http://%s:%d/metrics", self.metrics.cfg.host,
                     self.metrics.port)
        client = mqtt_client(self.cfg.mqtt, self.cfg.client_id, clean_session=False,
                             manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        self._writer_thread = threading.Thread(target=self._writer_loop, name="gateway-writer",
                                               daemon=True)
        self._writer_thread.start()
        log.info("gateway %s: connecting to %s, subscribing to %s, stores: %s",
                 self.cfg.client_id, describe(self.cfg.mqtt), self.topic_filter, stores.names())
        client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port, self.cfg.mqtt.keepalive_s)
        client.loop_start()

    def wait_ready(self, timeout: float) -> bool:
        """True once the broker has confirmed the subscription."""
        return self._subscribed.wait(timeout)

    def stop(self) -> None:
        """Write and acknowledge what is queued (up to ``drain_timeout_s``), then disconnect.

        Messages still unacknowledged after that stay with the broker (persistent
        session) and are delivered again.
        """
        self._stopping.set()
        if self._writer_thread is not None:
            self._writer_thread.join(self.cfg.drain_timeout_s)
            if self._writer_thread.is_alive():
                log.warning("stop: stores still failing after %.0fs; %d messages left "
                            "unacknowledged for redelivery", self.cfg.drain_timeout_s,
                            self._queue.qsize())
                self._give_up.set()
                self._writer_thread.join(30)
        if self._client is not None:
            self._client.disconnect()  # queued after the PUBACKs, so those go out first
            self._client.loop_stop()
        if self.metrics is not None:
            self.metrics.stop()
        if self._batches is not None:
            self._batches.stores.close()
        log.info("gateway stopped: %s", self.stats().line())

    def stats(self) -> GatewayStats:
        retention = self._retention.counts() if self._retention is not None else {}
        with self._lock:
            return dataclasses.replace(
                self._stats, rejects=dict(self._rejects), queue_depth=self._queue.qsize(),
                clock_steps=self._clock.steps, clock_offsets_s=self._clock.offsets(),
                connected=self._connected, **self._completeness.counts(), **retention)

    @property
    def running(self) -> bool:
        return self._writer_thread is not None and self._writer_thread.is_alive() \
            and not self._stopping.is_set()

    # --- MQTT callbacks (paho's thread) ------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any,
                    _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT connection refused by %s: %s", describe(self.cfg.mqtt), reason)
            return
        with self._lock:
            self._gen += 1
            self._connected = True
        log.info("connected to %s (session present: %s)", describe(self.cfg.mqtt),
                 getattr(flags, "session_present", "?"))
        client.subscribe(self.topic_filter, qos=1)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            self._gen += 1  # mids of the old connection must not be acked on a new one
            self._connected = False
        if not self._stopping.is_set():
            log.warning("disconnected from %s (%s); reconnecting", describe(self.cfg.mqtt),
                        reason)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("subscription to %s refused: %s", self.topic_filter, reasons)
            return
        log.info("subscribed to %s", self.topic_filter)
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._handle(client, msg)
        except Exception:  # never let an exception kill paho's network thread
            log.exception("unexpected error handling a message (left unacknowledged)")

    def _handle(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        if self._stopping.is_set():
            return  # not acked: the broker delivers it again to the next session
        with self._lock:
            gen = self._gen
            self._stats.messages += 1
        payload = bytes(msg.payload)
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")  # noqa: SLF001
        item = Received(gen, msg.mid, msg.qos, topic, [], payload[:DEAD_LETTER_PAYLOAD_BYTES])
        try:
            agent, seq, rows = decode_data(topic, payload, max_skew_ns=self._max_skew_ns,
                                           accept=self._accept)
            device = DevicePath.from_topic(topic)[0]
            if not self.cfg.agent_may(agent, device):  # its seq is not that agent's: unrecorded
                raise ContractError("agent_not_allowed", f"agent {agent!r} may not publish "
                                    f"for {device.asset_id!r} (gateway config `agents`)")
            item.rows = rows + self._clock.observe(agent, seq, device, rows, time.time_ns())
            item.seq = (agent, seq)
        except ContractError as exc:
            if isinstance(exc, BatchRejected):
                item.seq = (exc.agent, exc.seq)  # handled: recorded, never asked for again
            self._dead_letter(client, item, exc.reason, exc.detail)
        else:
            with self._lock:
                self._stats.samples_received += len(item.rows)
        while True:  # a full queue blocks this thread: backpressure to the broker
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._stopping.is_set():
                    return  # not acked: redelivered

    def _dead_letter(self, client: mqtt.Client, item: Received, reason: str,
                     detail: str) -> None:
        with self._lock:
            self._rejects[reason] += 1
        if publish_dead_letter(client, reason, detail, item.topic, item.head):
            with self._lock:
                self._stats.dead_letters += 1

    # --- writer thread -------------------------------------------------------------------

    def _writer_loop(self) -> None:
        assert self._batches is not None
        ledger = self._batches.stores.ledger
        next_stats = time.monotonic() + self.cfg.stats_interval_s
        while True:
            if self._retention is not None:
                self._retention.step()
            self._completeness.check(ledger, self._client)
            batch = collect(self._queue, self.cfg.batch, self._stopping)
            if batch:
                if not self._write(batch):
                    break  # gave up while stopping: the rest stays unacknowledged
                self._ack(batch)
            elif self._stopping.is_set() and self._queue.empty():
                break
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.cfg.stats_interval_s
                log.info("gateway: %s", self.stats().line())

    def _write(self, batch: list[Received]) -> bool:
        """Write the batch to every store; False if we gave up (stopping, stores down)."""
        assert self._batches is not None
        return self._batches.write(batch)

    def _count_write_error(self) -> None:
        with self._lock:
            self._stats.write_errors += 1

    def _store_rejected(self, item: Received, detail: str) -> None:
        assert self._client is not None
        self._dead_letter(self._client, item, "store_rejected", detail)

    def _ack(self, batch: list[Received]) -> None:
        client = self._client
        assert client is not None
        stored = 0
        with self._lock:  # no reconnect between the generation check and the acks
            for item in batch:
                stored += len(item.rows)
                if item.qos > 0 and item.gen == self._gen and self._connected:
                    client.ack(item.mid, item.qos)
            self._stats.samples_stored += stored
            self._stats.messages_done += len(batch)
            if stored:
                self._stats.batches_written += 1
                self._stats.last_batch_samples = stored
                self._stats.last_batch_latency_s = time.monotonic() - batch[0].received
                if self.metrics is not None:
                    self.metrics.batch_latency.observe(self._stats.last_batch_latency_s)


def run(config_path: Path | str) -> None:
    """``shopfloor gateway --config FILE``: run until SIGINT/SIGTERM, then stop cleanly."""
    cfg = load_config(config_path, GatewayConfig)
    gateway = Gateway(cfg)
    done = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        done.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        gateway.start()
        while not done.wait(0.5):
            pass
    finally:
        gateway.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
