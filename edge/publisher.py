"""MQTT side: one paho client per device, so each device has its own last will.

``DevicePublisher(...).start()`` connects in paho's own network thread. Every paho
callback is handed to the agent's event loop with ``loop.call_soon_threadsafe``; all
state (in-flight map, outbox) is touched only on that loop. On each connect it publishes
the retained birth and ``meta`` messages, then the device's outbox batches in seq order
(QoS 1, at most ``max_inflight`` unacknowledged); each PUBACK acknowledges its batch in
the outbox. paho keeps unacknowledged QoS 1 messages across reconnects and resends
them; batches left over by a previous run are resent from the outbox on start.

With ``commands=True`` (one publisher per agent) it also subscribes to the agent's
command topic and answers replay requests from the outbox's replay window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol, runtime_checkable

import paho.mqtt.client as mqtt

from shopfloor.commands import agent_cmd_topic, decode_replay_request
from shopfloor.contract import ContractError, DevicePath, state_status_payload
from shopfloor.mqtt import MqttConfig, call_soon, describe, mqtt_client

from .outbox import Outbox

log = logging.getLogger(__name__)


@runtime_checkable
class Port(Protocol):
    """What the agent publishes one device through: a ``DevicePublisher`` (the JSON
    contract) or a Sparkplug ``sparkplug.ports.DevicePort``."""

    device: str
    path: DevicePath
    connected: bool
    inflight: int
    published: int

    def start(self) -> None: ...
    def pump(self) -> None: ...
    def stop(self, timeout: float = 2.0) -> None: ...
    def device_status(self, up: bool, detail: str = "") -> None: ...


class DevicePublisher:
    def __init__(self, *, agent: str, device: str, path: DevicePath, mqtt_cfg: MqttConfig,
                 outbox: Outbox, meta: bytes, max_inflight: int,
                 loop: asyncio.AbstractEventLoop, commands: bool = False):
        self.agent, self.device, self.path = agent, device, path
        self.mqtt_cfg = mqtt_cfg
        self.outbox = outbox
        self.meta = meta
        self.max_inflight = max_inflight
        self.loop = loop
        self.connected = False
        self._stopping = False
        self.published = 0  # samples handed to paho (including resends)
        self.replayed = 0  # batches sent again on a gateway's replay request
        self._cmd_topic = agent_cmd_topic(agent) if commands else None
        self._inflight: dict[int, tuple[int, int]] = {}  # mid -> (seq, n_samples)
        self._cursor = 0  # highest seq handed to paho
        self._status_topic = path.topic("status")
        # paho's own limit stays above ours (+ birth, meta, death): a message paho marks
        # "queued" at reconnect time makes it skip resending the ones after it.
        self.client = mqtt_client(mqtt_cfg, f"{agent}.{device}", clean_session=True,
                                  max_inflight=max_inflight + 16)
        self.device_up = False  # the device answers (as the driver last said)
        self._device_detail = "device: not read yet"
        self.client.on_pre_connect = self._set_will
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    def _status(self, online: bool) -> bytes:
        reason = None if online or not self._device_detail else self._device_detail
        return state_status_payload(online, self.agent, time.time_ns(), reason=reason)

    def _set_will(self, client: Any, userdata: Any) -> None:
        """Before each (re)connect, in paho's thread: the will of this connection (no
        ``ts``: when the broker sends it, the agent is gone; ``connected_ts`` is now)."""
        client.will_set(self._status_topic, state_status_payload(
            False, self.agent, None, connected_ts=time.time_ns()), qos=1, retain=True)

    def device_status(self, up: bool, detail: str = "") -> None:
        """The device answers (or not): the retained status says so (``online`` is the
        agent connected *and* reading the device; ``reason`` why not)."""
        why = "" if up else f"device: {detail}"[:200]
        if (up, why) == (self.device_up, self._device_detail):
            return
        self.device_up, self._device_detail = up, why
        if self.connected and not self._stopping:
            self.client.publish(self._status_topic, self._status(up), qos=1, retain=True)

    def start(self) -> None:
        self.client.connect_async(self.mqtt_cfg.host, self.mqtt_cfg.port,
                                  keepalive=self.mqtt_cfg.keepalive_s)
        self.client.loop_start()

    # paho's network thread: hand over to the event loop, nothing else.
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._call(self._connected, rc)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._call(self._disconnected, rc)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        self._call(self._acked, mid)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self._call(self._command, bytes(msg.payload))

    def _call(self, fn: Any, *args: Any) -> None:
        call_soon(self.loop, fn, *args)

    # the event loop
    def _connected(self, rc: Any) -> None:
        if self._stopping:
            return
        if rc.is_failure:
            log.warning("%s: MQTT %s refused: %s", self.device, describe(self.mqtt_cfg), rc)
            return
        log.info("%s: MQTT connected to %s", self.device, describe(self.mqtt_cfg))
        self.connected = True
        self.client.publish(self._status_topic, self._status(self.device_up), qos=1,
                            retain=True)
        self.client.publish(self.path.topic("meta"), self.meta, qos=1, retain=True)
        if self._cmd_topic:
            self.client.subscribe(self._cmd_topic, qos=1)
        self.pump()

    def _command(self, payload: bytes) -> None:
        """A replay request: publish the acknowledged batches it names again (QoS 1)."""
        if not self.connected or self._stopping:
            return  # the gateway asks again
        try:
            ranges = decode_replay_request(payload)
        except ContractError as exc:
            log.warning("ignoring a bad command: %s", exc)
            return
        budget = 10 * self.max_inflight  # bounded per request; the gateway asks again
        for first, last in ranges:
            for e in self.outbox.replay(first, last, budget):
                self.client.publish(e.topic, e.payload, qos=1)  # PUBACK unused: acked already
                self.replayed += 1
                budget -= 1
            if budget <= 0:
                break
        log.info("replay request %s: %d batches sent again so far", ranges[:5], self.replayed)

    def _disconnected(self, rc: Any) -> None:
        if self.connected and not self._stopping:
            log.warning("%s: MQTT disconnected (%s); %d batches in flight will be resent",
                        self.device, rc, len(self._inflight))
        elif self._stopping:
            log.info("%s: MQTT disconnected", self.device)
        self.connected = False

    def _acked(self, mid: int) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is not None:
            self.outbox.ack(*entry)
            self.pump()

    def pump(self) -> None:
        """Hand pending batches to paho, oldest first, up to ``max_inflight`` in flight."""
        if not self.connected or self._stopping:
            return
        room = self.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for e in self.outbox.pending(self.device, self._cursor, room):
            info = self.client.publish(e.topic, e.payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                return
            self._inflight[info.mid] = (e.seq, e.n_samples)
            self._cursor = e.seq
            self.published += e.n_samples

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def stop(self, timeout: float = 2.0) -> None:
        """Publish death (offline) explicitly, then disconnect. Blocks up to ``timeout``."""
        self._stopping = True  # from here on, nothing new is handed to paho
        self._device_detail = "agent stopped"
        if self.connected:
            info = self.client.publish(self._status_topic, self._status(False), qos=1,
                                       retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("%s: death message not confirmed: %s", self.device, exc)
        self.client.disconnect()
        self.client.loop_stop()
