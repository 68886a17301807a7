"""The edge agent: drivers -> batches -> durable outbox -> MQTT.

``run(config_path)`` is the command-line entry point (blocks; SIGINT/SIGTERM stop it
cleanly). ``Agent(config)`` is the same thing for tests and embedding::

    async with Agent(cfg) as agent:   # start(); stop() on exit
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopfloor.contract import MAX_PAYLOAD_BYTES, SIGNAL_STATE, Quality, Sample, State
from shopfloor.mqtt import describe
from shopfloor.times import iso

from .alive import AliveFile
from .config import EdgeConfig, load_edge_config
from .driver import Driver, now_ns, quiet_libraries
from .mapping import meta_payload
from .metrics import AgentMetrics
from .outbox import Outbox
from .protocols import drivers_for
from .publisher import DevicePublisher, Port
from .sparkplug.ports import sparkplug_ports

log = logging.getLogger(__name__)


@dataclass
class _Device:
    """What the agent has put in a device's batches, and its link."""

    state_tag: str | None  # the tag published as the state signal, if any
    tags: frozenset[str] = frozenset()  # every tag it publishes
    last: dict[str, tuple[int, Any, Quality]] = field(default_factory=dict)  # tag -> ts, v, q
    up: bool = True  # as last reported (a first failure is logged and marked)
    lost_ns: int | None = None  # lost (or the agent restarted): when
    resumed_ns: int | None = None  # ... and from when the device answers again
    unread: set[str] = field(default_factory=set)  # tags not read since the loss


class Agent:
    def __init__(self, config: EdgeConfig):
        self.config = config
        self.outbox: Outbox | None = None
        self.publishers: dict[str, Port] = {}
        self.drivers: dict[str, Driver] = {}
        self.samples_read = 0
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._devices = {d.id: _Device(next((t.published_name for t in d.tags
                                             if t.signal == SIGNAL_STATE), None),
                                       frozenset(t.published_name for t in d.tags))
                         for d in config.devices}
        self.alive = AliveFile(Path(str(config.outbox.path) + ".alive"))
        self.metrics: AgentMetrics | None = None

    # --- Sink (called by drivers on the event loop) ---
    def sample(self, device: str, sample: Sample) -> None:
        self.samples_read += 1
        dev = self._devices[device]
        if dev.lost_ns is not None and sample.tag in dev.unread:
            # the first sample after a loss: not before the connection came back (a value
            # kept by the device or changed in the gap would shorten the loss)
            dev.unread.discard(sample.tag)
            since = max(dev.resumed_ns or now_ns(), dev.lost_ns + 1)
            if sample.ts < since:
                sample = Sample(sample.tag, since, sample.value, sample.quality)
            if not dev.unread:
                dev.lost_ns = dev.resumed_ns = None
        self._put(device, dev, sample)

    def _put(self, device: str, dev: _Device, sample: Sample) -> None:
        """Into the batch, never before (or at) the tag's last sample: a heartbeat or a
        mark stamped with the agent's clock may have gone out after a device change was
        sampled but before it arrived; the change then follows it by 1 ns, so the series
        keeps the device's order. A bad state is OFFLINE (its value is not the device's)."""
        if sample.quality is Quality.BAD and sample.tag == dev.state_tag:
            sample = Sample(sample.tag, sample.ts, State.OFFLINE.value, Quality.BAD)
        last = dev.last.get(sample.tag)
        if last is not None and sample.ts <= last[0]:
            sample = Sample(sample.tag, last[0] + 1, sample.value, sample.quality)
        dev.last[sample.tag] = (sample.ts, sample.value, sample.quality)
        buf = self._buffers[device]
        buf.append(sample.to_json())
        if len(buf) >= self.config.publish.max_batch_samples:
            self._flush(device)

    def connected(self, device: str, up: bool, detail: str, since_ns: int) -> None:
        dev = self._devices[device]
        if up:
            log.info("%s: device connected (%s)", device, detail)
            if dev.lost_ns is not None:  # back since its successful connect began
                dev.resumed_ns = since_ns if since_ns > dev.lost_ns else now_ns()
            self.publishers[device].device_status(True)
        elif dev.up:  # log and mark the first failure, not every retry
            log.warning("%s: device disconnected (%s)", device, detail)
            self._lost(device, since_ns)
            self.publishers[device].device_status(False, detail)
        dev.up = up

    def _lost(self, device: str, ts: int, *, mark: bool = True) -> None:
        """The device is unreachable from ``ts`` (or the agent was down): every tag it
        published is published again with quality bad (the state as OFFLINE: the value is
        the agent's, not the device's; ``mark`` False: already published) until it is
        read again, and each tag's first sample after that is stamped no earlier than the
        return (a value kept by the device, or changed in the gap, would shorten the
        loss; after a restart it could sort before the previous run's last samples)."""
        dev = self._devices[device]
        marks = {tag: v for tag, (_, v, q) in dev.last.items() if q is not Quality.BAD}
        if dev.state_tag is not None:
            marks[dev.state_tag] = State.OFFLINE.value
        dev.lost_ns, dev.resumed_ns = ts, None
        dev.unread = set(dev.tags) | set(dev.last) | set(marks)
        if not mark:
            return
        for tag, value in marks.items():
            self._put(device, dev, Sample(tag, ts, value, Quality.BAD))
        self._flush(device)

    # --- lifecycle ---
    async def start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        if cfg.metrics is not None:
            self.metrics = AgentMetrics(self, cfg.metrics)
        self.outbox = Outbox(cfg.outbox.path, cfg.agent_id, cfg.outbox.max_bytes,
                             cfg.outbox.replay_window,
                             listener=self.metrics.publish_latency if self.metrics else None)
        log.info("edge agent %s: %d devices, MQTT %s, outbox %s", cfg.agent_id,
                 len(cfg.devices), describe(cfg.mqtt), cfg.outbox.path)
        ports: dict[str, Port] = {}
        if cfg.sparkplug is not None:  # a Sparkplug B edge node instead of the JSON contract
            self.outbox, ports = sparkplug_ports(cfg, self.outbox, loop)
        drivers = drivers_for(cfg.devices, self, cfg.publish.heartbeat_s)
        for dev in cfg.devices:
            self._buffers[dev.id] = []
            pub = ports.get(dev.id) or DevicePublisher(
                agent=cfg.agent_id, device=dev.id, path=dev.device_path, mqtt_cfg=cfg.mqtt,
                outbox=self.outbox, meta=meta_payload(cfg.agent_id, dev.tags),
                max_inflight=cfg.publish.max_inflight, loop=loop,
                commands=not self.publishers)  # one connection answers agent commands
            self.publishers[dev.id] = pub
            pub.start()
            driver = drivers[dev.id]
            self.drivers[dev.id] = driver
            self._tasks.append(asyncio.create_task(driver.run(), name=f"driver-{dev.id}"))
        previous = self.alive.previous()
        if previous is not None:  # no device was read since the previous run ended
            ended, clean = previous
            if not clean:  # killed: its devices are marked OFFLINE from its last second
                log.warning("the previous run did not stop cleanly: its devices are "
                            "OFFLINE from %s (last alive) until read again", iso(ended))
            for dev in cfg.devices:  # a clean stop published its marks itself
                # after every sample the killed run committed (the alive file is written
                # once a second; a later sample would have held its state over the gap)
                newest = self.outbox.newest_ts(dev.id)
                at = ended if clean or newest is None else max(ended, newest + 1)
                self._lost(dev.id, at, mark=not clean)
        self.alive.touch(now_ns())
        self._tasks.append(asyncio.create_task(self._flusher(), name="flusher"))
        self._tasks.append(asyncio.create_task(self._stats_loop(), name="stats"))
        if self.metrics is not None:
            self.metrics.start()
            log.info("metrics on http://%s:%d/metrics", self.metrics.cfg.host,
                     self.metrics.port)

    async def stop(self, ack_timeout_s: float = 3.0) -> None:
        """Stop reading, commit what was read, wait briefly for acks, publish death, close."""
        if self.metrics is not None:
            await self.metrics.stop()
            self.metrics = None
        for task in self._tasks:
            task.cancel()
        await self._stopped(self._tasks)
        self._tasks.clear()
        stopped = now_ns()
        for device in self._buffers:  # not read from here on: OFFLINE (bad) from now
            self._lost(device, stopped)
        self.flush_all()
        deadline = time.monotonic() + ack_timeout_s
        while time.monotonic() < deadline and any(
                p.connected and (p.inflight or self._has_pending(p)) for p in
                self.publishers.values()):
            await asyncio.sleep(0.02)
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in self.publishers.values()))
        await asyncio.sleep(0)  # run acks handed over during stop
        if self.outbox is not None:
            self.log_stats()
            self.outbox.close()
            self.outbox = None
            self.alive.stopped(stopped)

    @staticmethod
    async def _stopped(tasks: list[asyncio.Task[None]], timeout_s: float = 10.0) -> None:
        """Wait for the cancelled tasks, at most ``timeout_s``: a task still running then
        lost its cancel (Python 3.11's ``wait_for`` can swallow one, see
        ``driver.raise_if_cancelled``) and would hold the stop for ever; it is logged
        with where it runs, and left behind."""
        if not tasks:
            return
        _, stuck = await asyncio.wait(tasks, timeout=timeout_s)
        for task in stuck:
            where = io.StringIO()
            task.print_stack(limit=3, file=where)
            log.error("%s did not stop within %g s of its cancel: %s", task.get_name(),
                      timeout_s, where.getvalue().strip())

    def _has_pending(self, pub: DevicePublisher) -> bool:
        assert self.outbox is not None
        return bool(self.outbox.pending(pub.device, limit=1))

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- batching ---
    def _flush(self, device: str) -> None:
        buf = self._buffers[device]
        if not buf or self.outbox is None:
            return
        self._buffers[device] = []
        pub = self.publishers[device]
        for chunk in _chunks(buf):
            self.outbox.append(device, pub.path.topic("data"), chunk)  # durable first
        pub.pump()

    def flush_all(self) -> None:
        for device in self._buffers:
            self._flush(device)
        if self.outbox is not None:
            self.outbox.flush_acks()

    async def _flusher(self) -> None:
        touched = time.monotonic()
        while True:
            await asyncio.sleep(self.config.publish.max_batch_interval_s)
            self.flush_all()
            if time.monotonic() - touched >= 1.0:  # alive until at least now
                self.alive.touch(now_ns())
                touched = time.monotonic()

    # --- stats ---
    def stats(self) -> dict[str, int]:
        ob = self.outbox
        return {
            "read": self.samples_read,
            "published": sum(p.published for p in self.publishers.values()),
            "enqueued": ob.enqueued if ob else 0,
            "acked": ob.acknowledged if ob else 0,
            "dropped": ob.dropped if ob else 0,
            "outbox_depth": ob.depth if ob else 0,
        }

    def log_stats(self) -> None:
        log.info("stats: %s", " ".join(f"{k}={v}" for k, v in self.stats().items()))

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval_s)
            self.log_stats()


# A sample's JSON is at most ~1.7 kB (128-char tag, 256-char escaped string); below this
# many samples a batch cannot exceed the contract's MAX_PAYLOAD_BYTES, above it we measure.
_SAFE_SAMPLES = MAX_PAYLOAD_BYTES // 2000
_CHUNK_BYTES = MAX_PAYLOAD_BYTES * 9 // 10
# A sample's JSON besides its tag and a string value, at most (v1 or v2): the keys, a
# 20-character ts, a 24-character float or a 20-digit "vi", a 9-letter quality, a comma.
_FIXED_BYTES = 100


@functools.lru_cache(maxsize=4096)
def _json_len(text: str) -> int:
    return len(json.dumps(text))


def _size(s: dict[str, Any]) -> int:
    """An upper bound of a sample's JSON size (exact for its tag and a string value)."""
    v = s["v"]
    return _json_len(s["tag"]) + _FIXED_BYTES + (len(json.dumps(v)) if type(v) is str else 0)


def _chunks(samples: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split a batch so that no message exceeds the contract's payload limit."""
    if len(samples) <= _SAFE_SAMPLES:
        return [samples]
    out: list[list[dict[str, Any]]] = [[]]
    size = 0
    for s in samples:
        n = _size(s)
        if out[-1] and size + n > _CHUNK_BYTES:
            out.append([])
            size = 0
        out[-1].append(s)
        size += n
    return out


async def _main(cfg: EdgeConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Agent(cfg):
        await stop.wait()
        log.info("stopping")


def run(config_path: Path | str) -> None:
    """Load the config and run the agent until SIGINT/SIGTERM."""
    quiet_libraries()
    asyncio.run(_main(load_edge_config(config_path)))
