"""OPC UA driver: subscribe to data changes of a device's nodes.

``OpcUaDriver(device, sink, heartbeat_s).run()`` connects, subscribes every tag with the
configured sampling interval and a monitored-item queue > 1 (so no transition is
coalesced away), reports each change with its SourceTimestamp, re-reports an unchanged
tag every ``heartbeat_s`` (with the agent's time) and, when the server goes away,
re-creates session and subscription with capped exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeNotif

from shopfloor.config import secret
from shopfloor.contract import Quality, Sample

from .config import OpcUaDevice, OpcUaTag
from .driver import Backoff, Sink, now_ns
from .mapping import ReportByException, to_sample

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_ns(dt: datetime) -> int:
    """UTC datetime (naive means UTC) -> integer ns since the epoch, without float rounding."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return ((dt - _EPOCH) // timedelta(microseconds=1)) * 1000


def quality_of(status: ua.StatusCode | None) -> Quality:
    """The OPC UA StatusCode's severity class (top two bits)."""
    if status is None:
        return Quality.GOOD
    severity = status.value >> 30
    return Quality.GOOD if severity == 0 else Quality.UNCERTAIN if severity == 1 else Quality.BAD


def source_ts_ns(dv: ua.DataValue) -> int:
    """SourceTimestamp, else ServerTimestamp, else the time it was received."""
    for ts in (dv.SourceTimestamp, dv.ServerTimestamp):
        if ts is not None and ts.year > 1601:  # 1601 = OPC UA's "no timestamp"
            return datetime_ns(ts)
    return now_ns()


class _Handler:
    def __init__(self, driver: OpcUaDriver, by_node: dict[str, OpcUaTag]):
        self.driver = driver
        self.by_node = by_node

    def datachange_notification(self, node: Any, val: Any, data: DataChangeNotif) -> None:
        tag = self.by_node.get(node.nodeid.to_string())
        if tag is not None:
            self.driver.on_change(tag, val, data.monitored_item.Value)

    def status_change_notification(self, status: Any) -> None:
        log.warning("%s: subscription status %s", self.driver.device.id, status)


class OpcUaDriver:
    def __init__(self, device: OpcUaDevice, sink: Sink, heartbeat_s: float):
        self.device = device
        self.sink = sink
        self.rbe = ReportByException(heartbeat_s)
        self.heartbeat_s = heartbeat_s
        self.backoff = Backoff(0.5, device.reconnect_max_s)
        self.changes = 0

    def on_change(self, tag: OpcUaTag, val: Any, dv: ua.DataValue) -> None:
        quality = quality_of(dv.StatusCode)
        sample = to_sample(tag, val, source_ts_ns(dv), quality)
        if sample is None:
            return
        self.changes += 1
        self.rbe.note(sample, time.monotonic_ns())
        self.sink.sample(self.device.id, sample)

    async def run(self) -> None:
        dev = self.device
        while True:
            client = Client(dev.endpoint, timeout=dev.timeout_s)
            lost = asyncio.Event()

            async def on_lost(exc: Exception, lost: asyncio.Event = lost) -> None:
                lost.set()

            client.connection_lost_callback = on_lost
            if dev.username is not None:
                client.set_user(dev.username)
                client.set_password(secret(dev.password) or "")
            connected = False
            try:
                await asyncio.wait_for(client.connect(), dev.timeout_s * 2)
                connected = True
                await self._subscribe(client)
                self.sink.connected(dev.id, True, dev.endpoint)
                self.backoff.reset()
                await self._heartbeat_until(lost)
                raise ConnectionError("connection lost")
            except (OSError, TimeoutError, ConnectionError, ua.UaError) as exc:
                self.sink.connected(dev.id, False, f"{dev.endpoint}: {exc!r}")
            except Exception as exc:  # a driver must never die: log, back off, retry
                log.exception("%s: unexpected OPC UA error", dev.id)
                self.sink.connected(dev.id, False, f"{dev.endpoint}: {exc!r}")
            finally:
                with contextlib.suppress(Exception):
                    if connected:
                        await asyncio.wait_for(client.disconnect(), 2)
                    else:
                        client.disconnect_socket()
            await asyncio.sleep(self.backoff.next_delay())

    async def _subscribe(self, client: Client) -> None:
        dev = self.device
        by_node = {ua.NodeId.from_string(t.node).to_string(): t for t in dev.tags}
        period = max(dev.sampling_interval_ms, 10)
        sub = await client.create_subscription(period, _Handler(self, by_node))
        nodes = [client.get_node(t.node) for t in dev.tags]
        results = await sub.subscribe_data_change(
            nodes, queuesize=dev.queue_size, sampling_interval=dev.sampling_interval_ms)
        for tag, res in zip(dev.tags, results, strict=True):
            if isinstance(res, ua.StatusCode):
                log.warning("%s: cannot subscribe %s (%s): %s", dev.id, tag.name, tag.node, res)

    async def _heartbeat_until(self, lost: asyncio.Event) -> None:
        tick = min(1.0, self.heartbeat_s / 2)
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), tick)
            if lost.is_set():
                return
            for tag, value, quality in self.rbe.due(time.monotonic_ns()):
                self.sink.sample(self.device.id, Sample(tag, now_ns(), value, quality))
