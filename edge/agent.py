"""The edge agent: drivers -> batches -> durable outbox -> MQTT.

``run(config_path)`` is the command-line entry point (blocks; SIGINT/SIGTERM stop it
cleanly). ``Agent(config)`` is the same thing for tests and embedding::

    async with Agent(cfg) as agent:   # start(); stop() on exit
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

from shopfloor.contract import MAX_PAYLOAD_BYTES, SIGNAL_STATE, Quality, Sample
from shopfloor.mqtt import describe

from .config import EdgeConfig, load_edge_config
from .driver import Driver, now_ns, quiet_libraries
from .mapping import meta_payload
from .metrics import AgentMetrics
from .outbox import Outbox
from .protocols import driver_for
from .publisher import DevicePublisher

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, config: EdgeConfig):
        self.config = config
        self.outbox: Outbox | None = None
        self.publishers: dict[str, DevicePublisher] = {}
        self.drivers: dict[str, Driver] = {}
        self.samples_read = 0
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._device_up: dict[str, bool] = {}
        # connection loss -> the state signal is published as OFFLINE (see ``connected``)
        self._state_tag = {d.id: next((t.published_name for t in d.tags
                                       if t.signal == SIGNAL_STATE), None)
                           for d in config.devices}
        self._offline_ns: dict[str, int] = {}  # devices lost: when the loss was seen
        self._resumed_ns: dict[str, int] = {}  # ... and when the connection came back
        self.metrics: AgentMetrics | None = None

    # --- Sink (called by drivers on the event loop) ---
    def sample(self, device: str, sample: Sample) -> None:
        self.samples_read += 1
        if device in self._offline_ns and sample.tag == self._state_tag[device]:
            # the first state after a loss: not before the connection came back (a value
            # kept by the device or changed in the gap would shorten the OFFLINE time)
            del self._offline_ns[device]
            since = self._resumed_ns.pop(device, None) or now_ns()
            if sample.ts < since:
                sample = Sample(sample.tag, since, sample.value, sample.quality)
        buf = self._buffers[device]
        buf.append(sample.to_json())
        if len(buf) >= self.config.publish.max_batch_samples:
            self._flush(device)

    def connected(self, device: str, up: bool, detail: str, since_ns: int) -> None:
        if up:
            log.info("%s: device connected (%s)", device, detail)
            if device in self._offline_ns:  # back since its successful connect began
                self._resumed_ns[device] = since_ns if since_ns > self._offline_ns[device] \
                    else now_ns()
        elif self._device_up.get(device, True):  # log the first failure, not every retry
            log.warning("%s: device disconnected (%s)", device, detail)
            self._offline(device, since_ns)
        self._device_up[device] = up

    def _offline(self, device: str, ts: int) -> None:
        """The device is unreachable: its state is OFFLINE from ``ts`` (quality bad: the
        value is the agent's, not the device's) until a state is read from it again."""
        tag = self._state_tag.get(device)
        if tag is None or device not in self._buffers:
            return
        self._offline_ns.pop(device, None)
        self._resumed_ns.pop(device, None)
        self.sample(device, Sample(tag, ts, "OFFLINE", Quality.BAD))
        self._offline_ns[device] = ts
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
        for dev in cfg.devices:
            self._buffers[dev.id] = []
            pub = DevicePublisher(
                agent=cfg.agent_id, device=dev.id, path=dev.device_path, mqtt_cfg=cfg.mqtt,
                outbox=self.outbox, meta=meta_payload(cfg.agent_id, dev.tags),
                max_inflight=cfg.publish.max_inflight, loop=loop,
                commands=not self.publishers)  # one connection answers agent commands
            self.publishers[dev.id] = pub
            pub.start()
            driver = driver_for(dev, self, cfg.publish.heartbeat_s)
            self.drivers[dev.id] = driver
            self._tasks.append(asyncio.create_task(driver.run(), name=f"driver-{dev.id}"))
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
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
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
        while True:
            await asyncio.sleep(self.config.publish.max_batch_interval_s)
            self.flush_all()

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


def _chunks(samples: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split a batch so that no message exceeds the contract's payload limit."""
    if len(samples) <= _SAFE_SAMPLES:
        return [samples]
    out: list[list[dict[str, Any]]] = [[]]
    size = 0
    for s in samples:
        n = len(json.dumps(s, separators=(",", ":"))) + 1
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
