"""The Sparkplug host's side of the gateway's MQTT client: its subscriptions, the primary
host's STATE (birth retained after subscribing, death as the will, the same timestamp in
both, per Sparkplug 3.0), and the rebirth NCMDs the host asks for.

``HostLink(cfg, accept, max_skew_ns)``: the gateway calls ``prepare`` before connecting,
``subscriptions`` on connect, ``subscribed`` once the broker confirmed them,
``disconnected``, ``handle`` for each Sparkplug message (paho's thread) and ``stop``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import paho.mqtt.client as mqtt

from shopfloor.contract import MAX_CLOCK_SKEW_NS, DeviceSample
from shopfloor.sparkplug.payload import NAMESPACE, state_payload, state_topic, to_ms

from .config import SparkplugHostConfig
from .host import SUBSCRIPTIONS, SparkplugHost

log = logging.getLogger(__name__)
PREFIX = NAMESPACE + "/"


class HostLink:
    def __init__(self, cfg: SparkplugHostConfig, accept: Any = None,
                 max_skew_ns: int = MAX_CLOCK_SKEW_NS):
        self.cfg = cfg
        self.host = SparkplugHost(cfg, accept, max_skew_ns)
        self._topic = state_topic(cfg.host_id) if cfg.host_id else None
        self._state_ms = 0

    def prepare(self, client: mqtt.Client) -> None:
        """The STATE death as the will of the next connection (a fresh timestamp)."""
        if self._topic is not None:
            self._state_ms = to_ms(time.time_ns())
            client.will_set(self._topic, state_payload(False, self._state_ms), qos=1,
                            retain=True)

    @staticmethod
    def subscriptions() -> list[str]:
        return list(SUBSCRIPTIONS)

    def subscribed(self, client: mqtt.Client) -> None:
        """Subscriptions in place: the primary host is ONLINE."""
        if self._topic is not None:
            client.publish(self._topic, state_payload(True, self._state_ms), qos=1, retain=True)
            log.info("sparkplug: %s online", self._topic)

    def disconnected(self, client: mqtt.Client) -> None:
        self.prepare(client)

    def handle(self, client: mqtt.Client, topic: str, payload: bytes) -> list[DeviceSample]:
        """The rows of one Sparkplug message (SparkplugError: rejected); the rebirth
        requests it caused are published either way."""
        try:
            return self.host.handle(topic, payload, time.time_ns())
        finally:
            for ncmd, body in self.host.take_rebirths():
                log.info("sparkplug: asking %s for a rebirth", ncmd)
                client.publish(ncmd, body, qos=0)

    def stop(self, client: mqtt.Client, timeout_s: float = 2.0) -> None:
        """An intentional disconnect: publish the STATE death first."""
        if self._topic is not None and client.is_connected():
            info = client.publish(self._topic, state_payload(False, self._state_ms), qos=1,
                                  retain=True)
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.warning("sparkplug: STATE death not confirmed: %s", exc)
        self.host.close()

    def counts(self) -> dict[str, int]:
        return dict(self.host.counts)
