"""Delivering alert events: each opening and resolution is POSTed as JSON to every
configured webhook and published (QoS 1) on ``shopfloor/v1/_alerts/{asset}``.

An event is claimed before it is sent (a conditional update of ``claimed_by`` /
``claimed_until``), so of several servers sharing the database one sends it; a channel
is marked done once the webhook answered 2xx or the broker acknowledged, otherwise it is
tried again after ``retry_s``, after a restart too. A server that dies between sending
and marking sends again: receivers dedupe on ``event_id``.

Payload: ``{"v":1,"event_id","event":"open"|"resolve","at","alert":{id, rule_id, rule,
kind, asset, status, opened_at, resolved_at, value, message}}``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
from sqlalchemy import or_, select, update

from shopfloor.contract import alert_topic
from shopfloor.mqtt import describe, mqtt_client
from shopfloor.server.operations.alerts import alert_json
from shopfloor.server.operations.config import AlertsConfig
from shopfloor.server.operations.db import Database
from shopfloor.server.operations.schema import Alert, AlertEvent, AlertRule
from shopfloor.times import NS, iso

log = logging.getLogger("shopfloor.server.alerts")
LEASE_S = 30.0  # a claim lasts this long (a send takes at most WEBHOOK_TIMEOUT_S each)
WEBHOOK_TIMEOUT_S = 5.0
BATCH = 50


def payload(ev: AlertEvent, alert: Alert, rule: AlertRule | None) -> dict[str, Any]:
    return {"v": 1, "event_id": f"{alert.id}:{ev.event}", "event": ev.event, "at": iso(ev.at),
            "alert": alert_json(alert, rule)}


class Delivery:
    """Sends pending alert events on every channel (``send_pending``); ``close`` at the end."""

    def __init__(self, db: Database, cfg: AlertsConfig):
        self.db, self.cfg = db, cfg
        self.http = httpx.Client(timeout=WEBHOOK_TIMEOUT_S)
        self.mqtt = None
        if cfg.mqtt is not None:
            self.mqtt = mqtt_client(cfg.mqtt, f"shopfloor-alerts-{cfg.name}")
            self.mqtt.connect_async(cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.keepalive_s)
            self.mqtt.loop_start()
            log.info("alerts published on %s", describe(cfg.mqtt))

    def close(self) -> None:
        self.http.close()
        if self.mqtt is not None:
            self.mqtt.disconnect()
            self.mqtt.loop_stop()

    def _claim(self, now: int) -> list[int]:
        """Ids of the pending events this server now holds a lease on."""
        with self.db.session() as s:
            ids = list(s.scalars(select(AlertEvent.id).where(
                or_(AlertEvent.webhook_done.is_(False), AlertEvent.mqtt_done.is_(False)),
                or_(AlertEvent.claimed_until.is_(None), AlertEvent.claimed_until < now))
                .order_by(AlertEvent.id).limit(BATCH)))
        mine = []
        for i in ids:
            with self.db.session() as s:
                got = s.execute(update(AlertEvent).where(
                    AlertEvent.id == i, or_(AlertEvent.claimed_until.is_(None),
                                            AlertEvent.claimed_until < now))
                    .values(claimed_by=self.cfg.name,
                            claimed_until=now + round(LEASE_S * NS)))
                if got.rowcount == 1:
                    mine.append(i)
        return mine

    def send_pending(self, now: int | None = None) -> int:
        """Send what is pending; returns how many events are now fully delivered."""
        now = time.time_ns() if now is None else now
        done = 0
        for i in self._claim(now):
            with self.db.session() as s:
                ev = s.get(AlertEvent, i)
                assert ev is not None
                alert = s.get(Alert, ev.alert_id)
                assert alert is not None
                doc = payload(ev, alert, s.get(AlertRule, alert.rule_id))
                web, mq = ev.webhook_done, ev.mqtt_done
            errors = []
            if not web:
                web = self._webhooks(doc, errors)
            if not mq:
                mq = self._publish(alert.asset, doc, errors)
            with self.db.session() as s:
                ev = s.get(AlertEvent, i)
                assert ev is not None
                ev.webhook_done, ev.mqtt_done = web, mq
                ev.attempts += 1
                ev.last_error = "; ".join(errors) or None
                ev.claimed_until = None if web and mq else (
                    time.time_ns() + round(self.cfg.retry_s * NS))
            if web and mq:
                done += 1
            else:
                log.warning("alert %s %s not delivered yet (%s); again in %.0f s",
                            alert.id, doc["event"], "; ".join(errors), self.cfg.retry_s)
        return done

    def _webhooks(self, doc: dict[str, Any], errors: list[str]) -> bool:
        ok = True
        for n, url in enumerate(self.cfg.webhooks, 1):
            try:
                r = self.http.post(url.get_secret_value(), json=doc,
                                   headers={"X-Shopfloor-Event-Id": doc["event_id"]})
                if not r.is_success:
                    ok = False
                    errors.append(f"webhook {n}: HTTP {r.status_code}")
            except httpx.HTTPError as exc:  # the URL may hold a secret: not logged
                ok = False
                errors.append(f"webhook {n}: {type(exc).__name__}")
        return ok

    def _publish(self, asset: str, doc: dict[str, Any], errors: list[str]) -> bool:
        if self.mqtt is None:
            return True
        if not self.mqtt.is_connected():  # paho would queue it and send it on connect,
            errors.append("mqtt: not connected")  # after our next attempt: twice
            return False
        info = self.mqtt.publish(alert_topic(asset), json.dumps(doc), qos=1)
        try:
            info.wait_for_publish(timeout=WEBHOOK_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:  # not connected / queue full
            errors.append(f"mqtt: {exc}")
            return False
        if not info.is_published():
            errors.append("mqtt: no acknowledgement")
            return False
        return True
