"""OPC UA driver: subscribe to data changes of a device's nodes (or poll them).

``OpcUaDriver(device, sink, heartbeat_s).run()`` connects (security and identity from
the config), resolves node ids and browse paths, and either creates monitored items
with the configured sampling interval, queue > 1 (so no transition is coalesced away)
and data-change filter, in chunks within the server's MaxMonitoredItemsPerCall, or, in
``mode: poll``, reads every node each ``poll_s`` in chunks within MaxNodesPerRead. It
reports each value with its SourceTimestamp, re-reports an unchanged tag every
``heartbeat_s`` (with the agent's time) and, when the server goes away, re-creates
session and subscription with capped exponential backoff and jitter
(``driver.SessionDriver``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from asyncua import Client, Node, ua
from asyncua.common.subscription import DataChangeNotif

from shopfloor.contract import Sample

from ..driver import Backoff, CheckResult, DriverStats, SessionDriver, Sink, now_ns, short_error
from ..mapping import ReportByException, to_sample
from .client import (
    call_chunked,
    connect,
    eu_range,
    monitoring_filter,
    opcua_client,
    operation_limits,
    read_values,
    resolve,
)
from .codec import quality_of, source_ts_ns
from .config import OpcUaDevice, OpcUaTag

log = logging.getLogger(__name__)


class _Handler:
    def __init__(self, driver: OpcUaDriver, by_node: dict[str, list[OpcUaTag]]):
        self.driver = driver
        self.by_node = by_node

    def datachange_notification(self, node: Any, val: Any, data: DataChangeNotif) -> None:
        for tag in self.by_node.get(node.nodeid.to_string(), ()):
            self.driver.on_change(tag, val, data.monitored_item.Value)

    def status_change_notification(self, status: Any) -> None:
        log.warning("%s: subscription status %s", self.driver.device_id, status)


class OpcUaDriver(SessionDriver):
    protocol_name = "OPC UA"
    transient = (OSError, TimeoutError, ConnectionError, ua.UaError)

    def __init__(self, device: OpcUaDevice, sink: Sink, heartbeat_s: float):
        super().__init__(device.id, device.where, sink, Backoff(0.5, device.reconnect_max_s))
        self.device = device
        self.rbe = ReportByException(heartbeat_s)
        self.heartbeat_s = heartbeat_s
        self.changes = 0
        self.reads = 0  # monitored items created / nodes read (metrics)
        self.calls: list[int] = []  # items per CreateMonitoredItems / Read call, last session

    def stats(self) -> DriverStats:
        return DriverStats(self.reads, self.errors, self.up)

    def on_change(self, tag: OpcUaTag, val: Any, dv: ua.DataValue) -> None:
        quality = quality_of(dv.StatusCode)
        sample = to_sample(tag, val, source_ts_ns(dv), quality)
        if sample is None:
            return
        self.changes += 1
        self.rbe.note(sample, time.monotonic_ns())
        self.sink.sample(self.device_id, sample)

    async def session(self) -> None:
        dev = self.device
        lost = asyncio.Event()

        async def on_lost(exc: Exception) -> None:
            lost.set()

        client: Client | None = None
        connected = False
        try:
            client = await opcua_client(dev)
            client.connection_lost_callback = on_lost
            since = now_ns()  # the device answers again from this attempt on
            await asyncio.wait_for(client.connect(), dev.timeout_s * 2)
            connected = True
            if dev.mode == "poll":
                await self._poll(client, lost, since)
            else:
                await self._subscribe(client)
                self.opened(since)
                await self._heartbeat_until(lost)
            raise ConnectionError("connection lost")
        finally:
            with contextlib.suppress(Exception):
                if client is None:
                    pass
                elif connected:
                    await asyncio.wait_for(client.disconnect(), 2)
                else:
                    client.disconnect_socket()

    async def _nodes(self, client: Client) -> tuple[list[OpcUaTag], list[Node]]:
        tags, nodes = [], []
        for tag, node in zip(self.device.tags, await resolve(client, self.device.tags),
                             strict=True):
            if isinstance(node, str):
                self.errors += 1
                log.warning("%s: cannot resolve %s: %s", self.device.id, tag.name, node)
            else:
                tags.append(tag)
                nodes.append(node)
        return tags, nodes

    async def _subscribe(self, client: Client) -> None:
        dev = self.device
        tags, nodes = await self._nodes(client)
        by_node: dict[str, list[OpcUaTag]] = {}
        for tag, node in zip(tags, nodes, strict=True):
            by_node.setdefault(node.nodeid.to_string(), []).append(tag)
        limits = await operation_limits(client, dev.max_nodes_per_call)
        period = max(dev.sampling_interval_ms, 10)
        sub = await client.create_subscription(period, _Handler(self, by_node))
        requests = [sub._make_monitored_item_request(
            node, ua.AttributeIds.Value, await self._filter(tag, node),
            dev.queue_size, ua.MonitoringMode.Reporting, dev.sampling_interval_ms)
            for tag, node in zip(tags, nodes, strict=True)]
        calls: list[int] = []
        results = await call_chunked(sub.create_monitored_items, requests,
                                     limits.monitored_items_per_call, calls)
        self.calls = calls
        for tag, res in zip(tags, results, strict=True):
            if isinstance(res, ua.StatusCode):
                self.errors += 1
                log.warning("%s: cannot subscribe %s (%s): %s", dev.id, tag.name, tag.address,
                            res)
            else:
                self.reads += 1

    async def _filter(self, tag: OpcUaTag, node: Node) -> ua.DataChangeFilter | None:
        """The tag's filter; a percent deadband reads the node's EURange (once a session).
        A node without EURange is subscribed without deadband (every change), logged."""
        f = tag.filter or self.device.filter
        if f is None or f.deadband_type != "percent":
            return monitoring_filter(f)
        rng = await eu_range(node)
        if rng is None:
            self.errors += 1
            log.warning("%s: %s has no EURange: percent deadband ignored, every change "
                        "is reported", self.device.id, tag.name)
            return monitoring_filter(f.model_copy(update={"deadband_type": "none"}))
        return monitoring_filter(f, rng)

    async def _poll(self, client: Client, lost: asyncio.Event, since_ns: int) -> None:
        """mode poll: read every node each poll_s; report by exception."""
        dev = self.device
        tags, nodes = await self._nodes(client)
        limits = await operation_limits(client, dev.max_nodes_per_call)
        first = True
        next_t = time.monotonic()
        while not lost.is_set():
            calls: list[int] = []
            values = await read_values(client, nodes, limits.nodes_per_read, calls)
            self.calls = calls  # whole polls only
            limits.nodes_per_read = max(calls, default=limits.nodes_per_read)
            if first:
                self.opened(since_ns)
                first = False
            mono = time.monotonic_ns()
            for tag, dv in zip(tags, values, strict=True):
                self.reads += 1
                sample = to_sample(tag, dv.Value.Value if dv.Value else None,
                                   source_ts_ns(dv), quality_of(dv.StatusCode))
                if sample is not None and self.rbe.should_publish(sample, mono):
                    self.sink.sample(self.device_id, sample)
            next_t = max(next_t + dev.poll_s, time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), next_t - time.monotonic())

    async def _heartbeat_until(self, lost: asyncio.Event) -> None:
        tick = min(1.0, self.heartbeat_s / 2)
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), tick)
            if lost.is_set():
                return
            for tag, value, quality in self.rbe.due(time.monotonic_ns()):
                self.sink.sample(self.device_id, Sample(tag, now_ns(), value, quality))

    async def check(self) -> CheckResult:
        dev = self.device
        row = CheckResult(dev.id, "opcua", False, 0, len(dev.tags))
        try:
            client = await connect(dev)
        except Exception as exc:
            row.error = short_error(exc, ua.UaStatusCodeError)
            return row
        row.reachable = True
        try:
            resolved = await resolve(client, dev.tags)
            nodes = [n for n in resolved if isinstance(n, Node)]
            errors = [n for n in resolved if isinstance(n, str)]
            limits = await operation_limits(client, dev.max_nodes_per_call)
            values = await read_values(client, nodes, limits.nodes_per_read)
            for node, dv in zip(nodes, values, strict=True):
                if dv.StatusCode is None or dv.StatusCode.is_good():
                    row.tags_read += 1
                else:
                    errors.append(f"{node.nodeid.to_string()}: {dv.StatusCode.name}")
            row.error = errors[0] if errors else ""
        except Exception as exc:
            row.error = short_error(exc, ua.UaStatusCodeError)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2)
        return row
