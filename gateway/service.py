"""The gateway service: MQTT data messages -> decoded batches -> every configured store.

Threads:
- paho's network loop runs ``_on_message``: decode, then put ``_Item`` on a bounded
  queue. A full queue blocks the loop, so the broker holds the rest (backpressure).
- the writer thread takes items up to ``batch.max_samples`` / ``batch.max_interval_s``,
  writes them to every store, and only then acknowledges the MQTT messages, in the
  order they arrived. A failed write is retried with capped backoff, never acked and
  never dropped. A message that breaks the contract (or that a store refuses as bad
  data) is counted, published to ``{DEAD_LETTER_TOPIC}/{reason}`` and acknowledged.

Completeness (``completeness.py``): the seqs of the stored batches are merged into the
embedded store in the same transaction as their samples (written last, after the other
stores); a gap that stays open for ``completeness.timeout_s`` is asked for again on the
agent's command topic, answered from the agent's outbox replay window.

The session is persistent (``clean_session=False``) and acks are manual, so whatever
was not acknowledged when the gateway stops or dies is redelivered by the broker;
the store's idempotent writes turn that into exactly-once.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt

from shopfloor.config import load_config
from shopfloor.contract import (
    DEAD_LETTER_TOPIC,
    MAX_CLOCK_SKEW_NS,
    ContractError,
    DevicePath,
    agent_cmd_topic,
    decode_batch,
    replay_request,
    subscription,
)
from shopfloor.mqtt import describe, make_client
from shopfloor.storage import PermanentWriteError, Row, SampleWriter, open_writers
from shopfloor.storage.ledger import Ranges, add_seqs, merge
from shopfloor.storage.sqlite import SqliteStore

from .completeness import GapTracker
from .config import GatewayConfig
from .metrics import GatewayMetrics

log = logging.getLogger(__name__)

DEAD_LETTER_PAYLOAD_BYTES = 1024


@dataclass(slots=True)
class _Item:
    """One received message, in arrival order."""

    gen: int  # connection generation it arrived on (a mid is only valid on it)
    mid: int
    qos: int
    topic: str
    rows: list[Row]  # empty for a rejected message (acked in order, nothing to write)
    head: bytes  # the payload's first KiB, for the dead-letter topic
    received: float = field(default_factory=time.monotonic)
    seq: tuple[str, int] | None = None  # (agent, seq) of a decoded batch


@dataclass
class GatewayStats:
    messages: int = 0  # data messages received (valid or not)
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
    samples_expired: int = 0  # deleted from the embedded store by retention
    retention_passes: int = 0  # completed retention passes

    def line(self) -> str:
        lat = "-" if self.last_batch_latency_s is None else \
            f"{self.last_batch_latency_s * 1e3:.0f}ms"
        rejects = ",".join(f"{k}={v}" for k, v in sorted(self.rejects.items())) or "0"
        return (f"messages={self.messages} samples_stored={self.samples_stored} "
                f"batches={self.batches_written} last_batch={self.last_batch_samples}/{lat} "
                f"queue={self.queue_depth} rejects={rejects} write_errors={self.write_errors} "
                f"gaps_open={self.gaps_open} replays={self.replay_requests} "
                f"seqs_lost={self.seqs_lost} expired={self.samples_expired} "
                f"connected={self.connected}")


class Gateway:
    """Start with ``start()``, stop with ``stop()`` (flushes, acks, disconnects)."""

    def __init__(self, cfg: GatewayConfig, writers: list[SampleWriter] | None = None):
        self.cfg = cfg
        self._writers = writers
        self._queue: queue.Queue[_Item] = queue.Queue(cfg.queue_max_messages)
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
        cc = cfg.completeness
        self.gaps = GapTracker(cc.timeout_s, cc.max_attempts, cc.max_request_seqs)
        self._seq_store: SqliteStore | None = None  # where seq ranges persist (written last)
        self.metrics = GatewayMetrics(cfg.metrics, self.stats) if cfg.metrics else None
        self._max_skew_ns = int(cfg.max_clock_skew_s * 1e9)
        self._accept = cfg.accepts if cfg.accept is not None else None
        emb = cfg.store.embedded
        self._retention_ns = emb.retention_ns if emb is not None else None
        self._retention_due = 0.0  # monotonic time of the next expiry pass
        self._retention_cutoff: int | None = None  # set while a pass is under way

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._writers is None:
            self._writers = open_writers(self.cfg.store)
        seq_stores = [w for w in self._writers if isinstance(w, SqliteStore)]
        if seq_stores:
            self._seq_store = seq_stores[0]
            self._writers = [w for w in self._writers if w is not self._seq_store] + \
                [self._seq_store]
            for agent, ranges in self._seq_store.seq_ranges().items():
                self.gaps.update(agent, ranges)
        if self.metrics is not None:
            self.metrics.start()
        client = make_client(self.cfg.mqtt, self.cfg.client_id, clean_session=False,
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
                 self.cfg.client_id, describe(self.cfg.mqtt), self.topic_filter,
                 ", ".join(type(w).__name__ for w in self._writers))
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
        for w in self._writers or []:
            try:
                w.close()
            except Exception:
                log.exception("closing %s", type(w).__name__)
        log.info("gateway stopped: %s", self.stats().line())

    def stats(self) -> GatewayStats:
        with self._lock:
            s = dataclasses.replace(self._stats)
            s.rejects = dict(self._rejects)
            s.queue_depth = self._queue.qsize()
            s.connected = self._connected
            s.gaps_open, s.gaps_seen = self.gaps.open_gaps, self.gaps.gaps_seen
            s.replay_requests, s.seqs_lost = self.gaps.requests, self.gaps.lost
            return s

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
        item = _Item(gen, msg.mid, msg.qos, topic, [], payload[:DEAD_LETTER_PAYLOAD_BYTES])
        try:
            agent, seq, item.rows = decode_data(topic, payload, max_skew_ns=self._max_skew_ns,
                                                accept=self._accept)
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

    def _dead_letter(self, client: mqtt.Client, item: _Item, reason: str, detail: str) -> None:
        with self._lock:
            self._rejects[reason] += 1
        log.warning("rejected message on %r: %s: %r", item.topic[:200], reason, detail[:200])
        doc = {"reason": reason, "detail": detail, "topic": item.topic,
               "payload": base64.b64encode(item.head).decode()}
        info = client.publish(f"{DEAD_LETTER_TOPIC}/{reason}", json.dumps(doc), qos=1)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            with self._lock:
                self._stats.dead_letters += 1
        else:
            log.warning("could not publish to the dead-letter topic: %s",
                        mqtt.error_string(info.rc))

    # --- writer thread -------------------------------------------------------------------

    def _writer_loop(self) -> None:
        next_stats = time.monotonic() + self.cfg.stats_interval_s
        next_gaps = time.monotonic() + 1.0
        while True:
            self._expire()
            if self.cfg.completeness.enabled and time.monotonic() >= next_gaps:
                next_gaps = time.monotonic() + 1.0
                self._check_gaps()
            batch = self._collect()
            if batch:
                if not self._write(batch):
                    break  # gave up while stopping: the rest stays unacknowledged
                self._ack(batch)
            elif self._stopping.is_set() and self._queue.empty():
                break
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.cfg.stats_interval_s
                log.info("gateway: %s", self.stats().line())

    def _collect(self) -> list[_Item]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch, n = [first], len(first.rows)
        deadline = first.received + self.cfg.batch.max_interval_s
        while n < self.cfg.batch.max_samples:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 and \
                    not self._stopping.is_set() else self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(item)
            n += len(item.rows)
        return batch

    def _write(self, batch: list[_Item]) -> bool:
        """Write the batch to every store; False if we gave up (stopping, stores down)."""
        if not any(item.rows or item.seq for item in batch):
            return True
        for writer in self._writers or []:
            if not self._write_to(writer, batch):
                return False
        return True

    def _write_to(self, writer: SampleWriter, batch: list[_Item]) -> bool:
        rows = [r for item in batch for r in item.rows]
        seqs: dict[str, list[int]] = {}
        for item in batch:
            if item.seq is not None:
                seqs.setdefault(item.seq[0], []).append(item.seq[1])
        is_seq_store = writer is self._seq_store
        if not rows and not (is_seq_store and seqs):
            return True
        delay = 0.1
        while True:
            try:
                if is_seq_store:
                    assert isinstance(writer, SqliteStore)
                    self._seen(writer.write(rows, seqs))
                else:
                    writer.write(rows)
                    if self._seq_store is None:  # no embedded store: track in memory
                        self._seen({a: add_seqs(self.gaps.ranges.get(a, []), v)
                                    for a, v in seqs.items()})
                return True
            except PermanentWriteError as exc:
                if len(batch) > 1:  # find the message(s) the store refuses
                    return all(self._write_to(writer, [item]) for item in batch)
                log.error("%s refused a message's samples: %s", type(writer).__name__, exc)
                assert self._client is not None
                self._dead_letter(self._client, batch[0], "store_rejected", str(exc)[:500])
                batch[0].rows = []  # acked as a reject, not counted as stored
                return True
            except Exception as exc:
                with self._lock:
                    self._stats.write_errors += 1
                log.warning("writing %d samples to %s failed (%s: %s); retrying in %.1fs",
                            len(rows), type(writer).__name__, type(exc).__name__,
                            str(exc)[:300], delay)
                if self._give_up.wait(delay):
                    return False
                delay = min(delay * 2, self.cfg.retry_max_s)

    def _expire(self) -> None:
        """Retention: one bounded delete per writer-loop turn while a pass is under way, so
        a pass over a large backlog interleaves with the writes instead of blocking them."""
        if self._retention_ns is None or self._seq_store is None:
            return
        if self._retention_cutoff is None:
            if time.monotonic() < self._retention_due:
                return
            self._retention_cutoff = time.time_ns() - self._retention_ns
        emb = self.cfg.store.embedded
        assert emb is not None
        try:
            n = self._seq_store.delete_expired(self._retention_cutoff, emb.retention_batch_rows)
        except Exception as exc:  # noqa: BLE001 - retried at the next pass
            log.warning("retention: deleting expired samples failed: %s", exc)
            n = 0
        with self._lock:
            self._stats.samples_expired += n
        if n < emb.retention_batch_rows:  # pass done
            self._retention_cutoff = None
            self._retention_due = time.monotonic() + emb.retention_interval_s
            with self._lock:
                self._stats.retention_passes += 1

    def _seen(self, ranges: dict[str, Ranges]) -> None:
        with self._lock:
            for agent, r in ranges.items():
                self.gaps.update(agent, r)

    def _check_gaps(self) -> None:
        """Ask agents to replay gaps that stayed open; close those given up on."""
        if self._seq_store is not None:  # the store is the truth (gateways may share it)
            try:
                self._seen(self._seq_store.seq_ranges())
            except Exception as exc:  # noqa: BLE001 - retried at the next check
                log.warning("reading seq ranges failed: %s", exc)
                return
        with self._lock:
            ask, drop = self.gaps.due()
        client = self._client
        for agent, ranges in ask.items():
            log.warning("agent %s: seqs %s missing; asking for a replay", agent, ranges[:10])
            if client is not None:
                client.publish(agent_cmd_topic(agent), replay_request(ranges), qos=1)
        if drop:
            log.error("giving up on seqs %s: not replayed after %d requests",
                      drop, self.cfg.completeness.max_attempts)
            if self._seq_store is not None:
                with contextlib.suppress(Exception):
                    self._seen(self._seq_store.write([], closed=drop))
            else:
                self._seen({a: merge([*self.gaps.ranges.get(a, []), *r])
                            for a, r in drop.items()})

    def _ack(self, batch: list[_Item]) -> None:
        client = self._client
        assert client is not None
        stored = 0
        with self._lock:  # no reconnect between the generation check and the acks
            for item in batch:
                stored += len(item.rows)
                if item.qos > 0 and item.gen == self._gen and self._connected:
                    client.ack(item.mid, item.qos)
            self._stats.samples_stored += stored
            if stored:
                self._stats.batches_written += 1
                self._stats.last_batch_samples = stored
                self._stats.last_batch_latency_s = time.monotonic() - batch[0].received
                if self.metrics is not None:
                    self.metrics.batch_latency.observe(self._stats.last_batch_latency_s)


class BatchRejected(ContractError):
    """A well-formed batch (``agent``, ``seq`` known) rejected as a whole: its seq counts as
    handled, so the gateway does not ask for a replay that would be rejected again."""

    def __init__(self, reason: str, detail: str, agent: str, seq: int):
        super().__init__(reason, detail)
        self.agent = agent
        self.seq = seq


def decode_message(topic: str, payload: bytes) -> list[Row]:
    """The rows of one data message; raises ContractError with a reason."""
    return decode_data(topic, payload)[2]


def decode_data(topic: str, payload: bytes, *, now_ns: int | None = None,
                max_skew_ns: int = MAX_CLOCK_SKEW_NS,
                accept: Callable[[DevicePath], bool] | None = None,
                ) -> tuple[str, int, list[Row]]:
    """``(agent, seq, rows)`` of one data message; raises ContractError with a reason.

    Samples further than ``max_skew_ns`` from ``now_ns`` (default: the clock) are
    ``bad_timestamp``; a device that ``accept`` refuses is ``unknown_device``. Both raise
    ``BatchRejected`` (the batch decoded, so its agent and seq are known)."""
    device, kind = DevicePath.from_topic(topic)
    if kind != "data":
        raise ContractError("bad_topic", f"kind {kind!r} where data was expected: {topic!r}")
    if topic.endswith("\n") or "\n/" in topic:  # the contract's `$` lets one "\n" through
        raise ContractError("bad_topic", f"line break in topic {topic[:200]!r}")
    batch = decode_batch(payload, now_ns=None)  # the skew limit is checked below
    for s in batch.samples:
        if s.tag.endswith("\n"):
            raise ContractError("bad_tag", f"line break in tag {s.tag[:80]!r}")
    if batch.agent.endswith("\n"):
        raise ContractError("bad_schema", "line break in agent")
    if accept is not None and not accept(device):
        raise BatchRejected("unknown_device", f"device {device.asset_id!r} is not in `accept`",
                            batch.agent, batch.seq)
    now = time.time_ns() if now_ns is None else now_ns
    for s in batch.samples:
        if abs(s.ts - now) > max_skew_ns:
            raise BatchRejected("bad_timestamp",
                                f"ts {s.ts} is {(s.ts - now) / 1e9:+.0f}s from the gateway's "
                                f"clock (limit {max_skew_ns / 1e9:.0f}s)", batch.agent, batch.seq)
    return batch.agent, batch.seq, [(device, s) for s in batch.samples]


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
