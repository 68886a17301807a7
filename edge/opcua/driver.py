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
from collections.abc import Sequence
from typing import Any

from asyncua import Client, Node, ua

from shopfloor.contract import Quality, Sample

from ..driver import Backoff, CheckResult, DriverStats, SessionDriver, Sink, now_ns, short_error
from ..mapping import HEARTBEAT, ReportByException, to_sample
from .client import (
    call_chunked,
    connect,
    eu_range,
    monitoring_filter,
    opcua_client,
    open_session,
    operation_limits,
    read_values,
    resolve,
)
from .codec import plain, quality_of, source_ts_ns
from .config import OpcUaDevice, OpcUaTag
from .notify import Item, deliver_directly

log = logging.getLogger(__name__)
GOOD = Quality.GOOD

# Read results that mean the tag's address is wrong or not readable (``edge check``):
# any other status is the value's quality (the node was read).
NOT_READ = {getattr(ua.StatusCodes, name) for name in (
    "BadNodeIdUnknown", "BadNodeIdInvalid", "BadAttributeIdInvalid", "BadNotReadable",
    "BadUserAccessDenied", "BadSecurityModeInsufficient", "BadIndexRangeInvalid",
    "BadDataEncodingInvalid", "BadNotSupported")}


class _Handler:
    """The subscription's handler: data changes come as items (``notify.deliver_directly``:
    client handle, value, status code, timestamp); asyncua still calls this for status
    changes."""

    def __init__(self, driver: OpcUaDriver):
        self.driver = driver
        self.by_handle: dict[int, list[OpcUaTag]] = {}

    def on_values(self, items: Sequence[Item]) -> None:
        by_handle, on_value = self.by_handle, self.driver.on_value
        for handle, raw, status, ts in items:
            for tag in by_handle.get(handle, ()):
                on_value(tag, raw, status, ts)

    def status_change_notification(self, status: Any) -> None:
        code = getattr(status, "Status", status)
        log.warning("%s: subscription status %s", self.driver.device_id,
                    getattr(code, "name", code))


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
        self.missing: list[OpcUaTag] = []  # not resolved or subscribed in this session

    def stats(self) -> DriverStats:
        return DriverStats(self.reads, self.errors, self.up)

    def _sample(self, tag: OpcUaTag, raw: Any, ts: int, quality: Quality,
                why: str) -> Sample | None:
        """A value the device did not give (a bad status, a node not found) is the tag's
        last value, else ``why`` (the status name), with quality bad."""
        if raw is None:
            last = self.rbe.last(tag.published_name)
            raw, quality = (last[0] if last is not None else why or "Bad"), Quality.BAD
        return to_sample(tag, plain(raw), ts, quality)

    def publish(self, tag: OpcUaTag, raw: Any, ts: int, quality: Quality, why: str) -> None:
        """One value to the sink, whatever it is (a data change, a tag found missing)."""
        sample = self._sample(tag, raw, ts, quality, why)
        if sample is not None:
            self.rbe.note(sample, time.monotonic_ns())
            self.sink.sample(self.device_id, sample)

    def on_value(self, tag: OpcUaTag, raw: Any, status: int, ts: int | None) -> None:
        """A data change: the value, its StatusCode's value and its timestamp (None: the
        server gave none, the time it arrived)."""
        self.changes += 1
        quality = GOOD if status == 0 else quality_of(ua.StatusCode(status))
        self.publish(tag, raw, now_ns() if ts is None else ts, quality,
                     ua.StatusCode(status).name if raw is None else "")

    async def session(self) -> None:
        dev = self.device
        lost = asyncio.Event()

        async def on_lost(exc: Exception) -> None:
            lost.set()

        client: Client | None = None
        connected = False
        self.rbe.forget()  # nothing is good again until read in this session
        try:
            client = await opcua_client(dev)
            client.connection_lost_callback = on_lost
            since = now_ns()  # the device answers again from this attempt on
            await open_session(client, dev)
            connected = True
            if dev.mode == "poll":
                await self._poll(client, lost, since)
            else:
                await self._subscribe_until(client, lost, since)
            raise ConnectionError("connection lost")
        finally:
            with contextlib.suppress(Exception):
                if client is None:
                    pass
                elif connected:
                    await asyncio.wait_for(client.disconnect(), 2)
                else:
                    client.disconnect_socket()

    async def _resolve(self, client: Client, tags: list[OpcUaTag]
                       ) -> tuple[list[OpcUaTag], list[Node]]:
        """The nodes of ``tags`` that resolve; the others are published bad (once per
        session) and kept in ``missing``, to be resolved again every ``retry_s``."""
        found, nodes = [], []
        for tag, node in zip(tags, await resolve(client, tags), strict=True):
            if isinstance(node, str):
                self._missing(tag, node)
            else:
                found.append(tag)
                nodes.append(node)
        return found, nodes

    def _missing(self, tag: OpcUaTag, why: str) -> None:
        if tag not in self.missing:
            self.errors += 1
            log.warning("%s: %s: %s (published bad; tried again every %g s)",
                        self.device.id, tag.name, why, self.device.retry_s)
            self.missing.append(tag)
            self.publish(tag, None, now_ns(), Quality.BAD, why.rsplit(": ", 1)[-1])

    def _take_missing(self) -> list[OpcUaTag]:
        tags, self.missing = self.missing, []
        return tags

    async def _subscribe_until(self, client: Client, lost: asyncio.Event, since: int) -> None:
        dev = self.device
        self.missing = []
        handler = _Handler(self)
        sub = await client.create_subscription(max(dev.sampling_interval_ms, 10), handler)
        deliver_directly(client, sub, handler.on_values)
        limits = await operation_limits(client, dev.max_nodes_per_call)
        await self._monitor(client, sub, handler, list(dev.tags),
                            limits.monitored_items_per_call, True)
        self.opened(since)
        tick = min(1.0, self.heartbeat_s / 2, dev.retry_s)
        retry_at = time.monotonic() + dev.retry_s
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), tick)
            if lost.is_set():
                return
            for tag, value, quality in self.rbe.due(time.monotonic_ns()):
                self.sink.sample(self.device_id, Sample(tag, now_ns(), value, quality))
            if self.missing and time.monotonic() >= retry_at:
                await self._monitor(client, sub, handler, self._take_missing(),
                                    limits.monitored_items_per_call, False)
                retry_at = time.monotonic() + dev.retry_s

    async def _monitor(self, client: Client, sub: Any, handler: _Handler,
                       tags: list[OpcUaTag], per_call: int, first: bool) -> None:
        """Resolve ``tags`` and create their monitored items (a tag refused goes to
        ``missing``)."""
        dev = self.device
        tags, nodes = await self._resolve(client, tags)
        requests = [sub._make_monitored_item_request(
            node, ua.AttributeIds.Value, await self._filter(tag, node),
            dev.queue_size, ua.MonitoringMode.Reporting, dev.sampling_interval_ms)
            for tag, node in zip(tags, nodes, strict=True)]
        handles = [r.RequestedParameters.ClientHandle for r in requests]
        for tag, handle in zip(tags, handles, strict=True):
            handler.by_handle[handle] = [tag]
        calls: list[int] = []
        results = await call_chunked(sub.create_monitored_items, requests, per_call, calls)
        if first:
            self.calls = calls
        for tag, handle, res in zip(tags, handles, results, strict=True):
            if isinstance(res, ua.StatusCode):
                del handler.by_handle[handle]
                self._missing(tag, f"cannot subscribe {tag.address}: {res.name}")
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
        """mode poll: read every node each poll_s; report by exception. A heartbeat (an
        unchanged value) carries the time of the read that found it unchanged."""
        dev = self.device
        self.missing = []
        tags, nodes = await self._resolve(client, list(dev.tags))
        limits = await operation_limits(client, dev.max_nodes_per_call)
        first = True
        next_t = time.monotonic()
        retry_at = next_t + dev.retry_s
        while not lost.is_set():
            calls: list[int] = []
            read_ns = now_ns()
            values = await read_values(client, nodes, limits.nodes_per_read, calls)
            self.calls = calls  # whole polls only
            limits.nodes_per_read = max(calls, default=limits.nodes_per_read)
            if first:
                self.opened(since_ns)
                first = False
            mono = time.monotonic_ns()
            for tag, dv in zip(tags, values, strict=True):
                self.reads += 1
                self._polled(tag, dv, read_ns, mono)
            if self.missing and time.monotonic() >= retry_at:
                more, more_nodes = await self._resolve(client, self._take_missing())
                tags, nodes = tags + more, nodes + more_nodes
                retry_at = time.monotonic() + dev.retry_s
            next_t = max(next_t + dev.poll_s, time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), next_t - time.monotonic())

    def _polled(self, tag: OpcUaTag, dv: ua.DataValue, read_ns: int, mono: int) -> None:
        status = dv.StatusCode
        sample = self._sample(tag, dv.Value.Value if dv.Value else None, source_ts_ns(dv),
                              quality_of(status), status.name if status is not None else "")
        if sample is None:
            return
        kind = self.rbe.should_publish(sample, mono)
        if kind == HEARTBEAT:
            sample = Sample(sample.tag, read_ns, sample.value, sample.quality)
        if kind is not None:
            self.sink.sample(self.device_id, sample)

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
            notes = []
            for node, dv in zip(nodes, values, strict=True):
                status = dv.StatusCode
                if status is not None and status.value in NOT_READ:
                    errors.append(f"{node.nodeid.to_string()}: {status.name}")
                    continue
                row.tags_read += 1  # the server answered for the node, whatever its quality
                if status is not None and not status.is_good():
                    notes.append(f"{node.nodeid.to_string()}: {status.name}")
            row.error = errors[0] if errors else ""
            if notes:
                row.note = f"{len(notes)} read bad or uncertain now, e.g. {notes[0]}"
        except Exception as exc:
            row.error = short_error(exc, ua.UaStatusCodeError)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2)
        return row
