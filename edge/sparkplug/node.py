"""The Sparkplug B edge node: one MQTT session at a time, each with its own bdSeq.

A session: take the next bdSeq (persisted), connect a fresh paho client whose will is the
NDEATH with it, subscribe to the node's NCMD (and the primary host's STATE), wait for
that host to be online, publish NBIRTH and every DBIRTH, then the outbox's batches as
DDATA by alias (``seq`` 0-255 across the node's messages), those committed before the
birth flagged historical (they waited: host offline, broker away, agent restarted). Each
batch is acknowledged in the outbox on its PUBACK (QoS 1) or once written (QoS 0).
``Node Control/Rebirth`` repeats the births. A newer STATE offline ends the session: the
current values are stored again 1 ms after an explicit NDEATH (the gateway marks the
devices OFFLINE at a death), the client disconnects, and the next session waits for the
host. A lost connection also ends it; paho never resends into a later session (seq and
aliases are per session): unacknowledged batches go again from the outbox. All state is
touched on the agent's event loop; paho callbacks are handed over to it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from shopfloor.contract import SIGNAL_STATE, ContractError, Quality, Sample, decode_batch
from shopfloor.mqtt import call_soon, describe, mqtt_client
from shopfloor.sparkplug.payload import (
    MessageType,
    SparkplugError,
    Topic,
    decode,
    decode_state,
    state_topic,
    to_ms,
    wants_rebirth,
)

from ..config import EdgeConfig
from ..driver import Backoff
from .bdseq import BdSeq
from .book import Book, MsOutbox

log = logging.getLogger(__name__)


def now_ms() -> int:
    return to_ms(time.time_ns())


class SparkplugNode:
    def __init__(self, cfg: EdgeConfig, outbox: Any, loop: asyncio.AbstractEventLoop):
        sp = cfg.sparkplug
        assert sp is not None
        self.cfg, self.sp, self.loop = cfg, sp, loop
        self.group, self.node_id = sp.group_id, sp.node_id or cfg.agent_id
        self.book = Book(cfg.devices)
        self.outbox = MsOutbox(outbox, self.book)
        self.devices = [d.id for d in cfg.devices]
        self.bdseq = BdSeq(sp.state_path or Path(f"{cfg.outbox.path}.sparkplug.json"))
        self.max_inflight = cfg.publish.max_inflight * len(self.devices)
        self.connected = False  # MQTT session up
        self.born = False  # NBIRTH published in this session
        self.published: Counter[str] = Counter()  # samples handed to paho, per device
        self.births = 0
        self._client: Any = None
        self._bd: int | None = None
        self._seq = 0
        self._cut = 0  # outbox seqs up to this one were committed before the session's birth
        self._host_ms = -1  # timestamp of the newest STATE seen
        self._born_devices: set[str] = set()
        self._cursor: dict[str, int] = {}
        self._inflight: dict[int, tuple[int, int]] = {}  # mid -> outbox seq, samples
        self._ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop_lock = threading.Lock()
        self._ncmd = str(Topic(self.group, MessageType.NCMD, self.node_id))
        self._state = state_topic(sp.primary_host_id) if sp.primary_host_id else None

    def _topic(self, kind: MessageType, device: str | None = None) -> str:
        return str(Topic(self.group, kind, self.node_id, device))

    # --- sessions --------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = self.loop.create_task(self._run(), name="sparkplug-node")

    async def _run(self) -> None:
        backoff = Backoff(self.cfg.mqtt.reconnect_min_s, self.cfg.mqtt.reconnect_max_s)
        while not self._stopping:
            try:
                await self._session()
                backoff.reset()
            except OSError as exc:
                log.warning("sparkplug: MQTT %s: %s", describe(self.cfg.mqtt), exc)
            if not self._stopping:
                await asyncio.sleep(backoff.next_delay())

    async def _session(self) -> None:
        bd = self.bdseq.next()
        client = mqtt_client(self.cfg.mqtt, f"{self.cfg.agent_id}.sparkplug", clean_session=True,
                             max_inflight=self.max_inflight + 16, reconnect=False)
        client.will_set(self._topic(MessageType.NDEATH), self.book.ndeath(bd), qos=1)
        client.on_connect = lambda _c, _u, _f, rc, _p: self._call(self._connected, rc)
        client.on_disconnect = lambda _c, _u, _f, rc, _p: self._call(self._disconnected, rc)
        client.on_publish = lambda _c, _u, mid, _rc, _p: self._call(self._acked, mid)
        client.on_message = lambda _c, _u, msg: self._call(self._message, msg.topic,
                                                          bytes(msg.payload))
        self._ended = asyncio.Event()
        self._client, self._bd = client, bd
        try:
            await asyncio.to_thread(client.connect, self.cfg.mqtt.host, self.cfg.mqtt.port,
                                    self.cfg.mqtt.keepalive_s)
            if self._stopping:
                return
            client.loop_start()
            await self._ended.wait()
        finally:
            self._client = None
            self.connected = self.born = False
            self._inflight.clear()  # their batches go again, from the outbox
            self._born_devices.clear()
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    def _call(self, fn: Any, *args: Any) -> None:
        call_soon(self.loop, fn, *args)

    def _connected(self, rc: Any) -> None:
        if rc.is_failure:
            log.warning("sparkplug: MQTT %s refused: %s", describe(self.cfg.mqtt), rc)
            self._ended.set()
            return
        self.connected = True
        log.info("sparkplug: %s/%s connected to %s (bdSeq %d)", self.group, self.node_id,
                 describe(self.cfg.mqtt), self._bd)
        topics = [(self._ncmd, 1)] + ([(self._state, 1)] if self._state else [])
        self._client.subscribe(topics)
        if self._state is None:
            self._birth()

    def _disconnected(self, rc: Any) -> None:
        if self.connected and not self._stopping:
            log.warning("sparkplug: MQTT disconnected (%s); %d batches will go again",
                        rc, len(self._inflight))
        self.connected = False
        self._ended.set()

    def _message(self, topic: str, payload: bytes) -> None:
        if self._client is None or self._stopping:
            return
        try:
            if topic == self._state:
                online, ts = decode_state(payload)
                if ts < self._host_ms:
                    return  # an older STATE than one already seen
                self._host_ms = ts
                if online and not self.born:
                    self._birth()
                elif not online and self.born:
                    log.warning("sparkplug: primary host %s offline: ending the session; data "
                                "waits in the outbox", self.sp.primary_host_id)
                    self.loop.create_task(self._end_session())
            elif topic == self._ncmd and wants_rebirth(decode(payload)) and self.born:
                log.info("sparkplug: rebirth requested")
                self._birth()
        except SparkplugError as exc:
            log.warning("sparkplug: ignoring a bad message on %s: %s", topic, exc)

    async def _end_session(self) -> None:
        """NDEATH now, the current values again 1 ms later (stored: they go out, historical,
        after the next birth), then disconnect."""
        client, death = self._client, now_ms()
        self.born = False
        for device in self.devices:
            again = [{"tag": s.tag, "ts": (death + 1) * 1_000_000, "v": s.value,
                      "q": str(s.quality)} for s in self.book.current[device].values()]
            if again:
                self.outbox.append(device, "", again)
        info = client.publish(self._topic(MessageType.NDEATH),
                              self.book.ndeath(self._bd or 0, death), qos=1)
        await asyncio.to_thread(_wait, info, 2.0)
        client.disconnect()

    # --- births and data -------------------------------------------------------------------
    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 256
        return seq

    def _birth(self) -> None:
        """NBIRTH (seq 0) and every DBIRTH; the first of a session fixes the historical cut."""
        assert self._client is not None and self._bd is not None
        if not self.born:
            self._cut = self.outbox.last_seq
            self._cursor = {d: 0 for d in self.devices}
        self._seq = 1
        self._client.publish(self._topic(MessageType.NBIRTH),
                             self.book.nbirth(self._bd, now_ms()), qos=self.sp.qos)
        self._born_devices.clear()
        for device in self.devices:
            self._dbirth(device)
        self.born = True
        self.births += 1
        self.pump()

    def _dbirth(self, device: str, pending: list[Sample] | None = None) -> None:
        payload = self.book.dbirth(device, self._next_seq(), now_ms(), pending or ())
        self._client.publish(self._topic(MessageType.DBIRTH, device), payload, qos=self.sp.qos)
        self._born_devices.add(device)

    def pump(self) -> None:
        """Hand pending batches to paho, oldest first per device, ``max_inflight`` in flight."""
        if not (self.born and self.connected) or self._stopping:
            return
        for device in self.devices:
            room = self.max_inflight - len(self._inflight)
            if room <= 0:
                return
            for e in self.outbox.pending(device, self._cursor[device], room):
                try:
                    samples = list(decode_batch(e.payload).samples)
                except ContractError as exc:  # our own encoding: never expected
                    log.error("sparkplug: outbox batch %d unreadable (%s); skipped", e.seq, exc)
                    self.outbox.ack(e.seq, e.n_samples)
                    continue
                self._publish(device, e.seq, e.n_samples, samples)

    def _publish(self, device: str, seq: int, n: int, samples: list[Sample]) -> None:
        historical = seq <= self._cut
        if device not in self._born_devices:
            self._dbirth(device)
        payload = self.book.ddata(device, samples, self._seq, now_ms(), historical)
        if payload is None:  # a new tag or datatype: born again first
            self._dbirth(device, samples)
            payload = self.book.ddata(device, samples, self._seq, now_ms(), historical)
            assert payload is not None
        self._next_seq()
        info = self._client.publish(self._topic(MessageType.DDATA, device), payload,
                                    qos=self.sp.qos)
        self._inflight[info.mid] = (seq, n)
        self._cursor[device] = seq
        self.published[device] += n
        lost = next((s for s in samples if s.tag == SIGNAL_STATE and s.value == "OFFLINE"
                     and s.quality == Quality.BAD), None)
        if lost is not None:  # the agent lost the device: DDEATH; a DBIRTH before its next
            self._client.publish(self._topic(MessageType.DDEATH, device),
                                 self.book.ddeath(self._next_seq(), to_ms(lost.ts)),
                                 qos=self.sp.qos)
            self._born_devices.discard(device)

    def _acked(self, mid: int) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is not None:
            self.outbox.ack(*entry)
            self.pump()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # --- stop (from a worker thread: the agent stops its publishers with to_thread) ------
    def stop(self, timeout: float = 2.0) -> None:
        """An intentional disconnect: NDEATH, then DISCONNECT (the will is not sent)."""
        with self._stop_lock:
            if self._stopping:
                return
            self._stopping = True
            client = self._client
            if client is not None and self.connected and self._bd is not None:
                _wait(client.publish(self._topic(MessageType.NDEATH),
                                     self.book.ndeath(self._bd, now_ms()), qos=1), timeout)
            if client is not None:
                client.disconnect()
            self._call(self._ended.set)


def _wait(info: Any, timeout: float) -> None:
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError) as exc:
        log.warning("sparkplug: NDEATH not confirmed: %s", exc)
