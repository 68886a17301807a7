"""What every driver is and shares: the ``Driver`` interface, the ``Sink`` it reports to,
and one reconnect loop (``SessionDriver.run``) with capped exponential backoff.

A driver reads one device. ``run()`` reads until cancelled and never dies: a session
that fails is reported (``Sink.connected(..., up=False, ...)``), counted and opened
again after a backoff. ``check()`` tries the device once for ``shopfloor edge check``;
``stats()`` is what the metrics show. The agent picks the driver class by the device's
``protocol`` from ``protocols.DRIVERS``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Protocol

from shopfloor.contract import Sample

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where a driver reports, always from the agent's event loop."""

    def sample(self, device: str, sample: Sample) -> None: ...

    def connected(self, device: str, up: bool, detail: str, since_ns: int) -> None:
        """The device's link changed. ``since_ns``: when it was lost (down), or from when
        the device is known to answer again (up: its successful connection attempt)."""


@dataclass(frozen=True, slots=True)
class DriverStats:
    reads: int  # successful reads: Modbus requests, OPC UA items created / nodes read
    errors: int  # failed reads, connections and subscriptions
    up: bool  # connected now


@dataclass
class CheckResult:
    """A device (or the broker) tried once: one row of ``shopfloor edge check``."""

    name: str
    protocol: str
    reachable: bool
    tags_read: int
    tags: int
    error: str = ""
    note: str = ""  # not an error: e.g. tags that read bad or uncertain right now


class Driver(Protocol):
    """One device's reader, run by the agent as one asyncio task."""

    async def run(self) -> None:
        """Read and report to the sink until cancelled; reconnect on any failure."""

    async def check(self) -> CheckResult:
        """Connect once and read every tag once; never raises (the error is in the row)."""

    def stats(self) -> DriverStats: ...


class Backoff:
    """Capped exponential backoff with full jitter in [delay/2, delay]."""

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0):
        self.base_s, self.cap_s = base_s, cap_s
        self._attempt = 0

    def next_delay(self) -> float:
        delay = min(self.cap_s, self.base_s * (2 ** min(self._attempt, 30)))
        self._attempt += 1
        return delay * (0.5 + random.random() / 2)

    def reset(self) -> None:
        self._attempt = 0


def now_ns() -> int:
    return time.time_ns()


def raise_if_cancelled() -> None:
    """Raise the current task's cancellation if an await swallowed it.

    Python 3.11's ``asyncio.wait_for`` (pymodbus's, around every request, and asyncua's)
    returns the result instead of raising CancelledError when the cancel arrives after the
    awaited result but before the waiter resumed (python/cpython#86296, fixed in 3.12);
    measured: a cancel 1 to 3 loop iterations after a Modbus answer is lost every time. A
    driver's loop then reads on and the agent's stop waits for it for ever (the hang of
    shared Modbus lines' agent test under load: three units answering 60 times a second
    keep an answer in flight most of the time). The request stays pending on the task
    (``Task.cancelling()``), so it is raised here, after each such await. Not to be called
    inside an ``asyncio.timeout`` block (its own cancel counts until the block exits)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class SessionDriver:
    """The reconnect loop of every driver: ``run()`` opens ``session()`` for ever.

    A subclass's ``session()`` connects, calls ``opened(since_ns)`` once it reads, and
    reads until the connection fails (it never returns normally; it closes what it
    opened). An exception of ``transient`` (the protocol's connection errors) is counted
    in ``errors``; any other is logged with its traceback too. Either way the sink hears
    ``connected(device, False, ...)`` and the next session starts after a backoff.
    """

    protocol_name = "device"  # in the log line of an unexpected error
    transient: tuple[type[BaseException], ...] = (OSError, TimeoutError)

    def __init__(self, device_id: str, where: str, sink: Sink, backoff: Backoff):
        self.device_id, self.where = device_id, where
        self.sink = sink
        self.backoff = backoff
        self.errors = 0  # failed reads, connections and subscriptions (metrics)
        self.up = False

    async def session(self) -> None:
        raise NotImplementedError

    def opened(self, since_ns: int) -> None:
        """The session reads: report the device up and start the backoff afresh."""
        self.up = True
        self.sink.connected(self.device_id, True, self.where, since_ns)
        self.backoff.reset()

    async def run(self) -> None:
        unexpected = ""  # the last unexpected error: its traceback is logged once
        while True:
            raise_if_cancelled()
            try:
                await self.session()
            except self.transient as exc:
                self.errors += 1
                self._lost(exc)
            except Exception as exc:  # a driver must never die: log, back off, retry
                if repr(exc) != unexpected:
                    log.exception("%s: unexpected %s error", self.device_id,
                                  self.protocol_name)
                    unexpected = repr(exc)
                self._lost(exc)
            await asyncio.sleep(self.backoff.next_delay())

    def _lost(self, exc: Exception) -> None:
        self.up = False
        self.sink.connected(self.device_id, False, f"{self.where}: {exc!r}", now_ns())


def short_error(exc: BaseException, *named: type[BaseException]) -> str:
    """One line of at most 300 characters; connection errors (and ``named`` types) lead
    with their type name."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (ConnectionError, OSError, TimeoutError, *named)):
        text = f"{type(exc).__name__}: {text}"
    return " ".join(text.split())[:300]


def quiet_libraries() -> None:
    """The edge logs one line per event (a device lost, back, a read refused); the client
    libraries' own lines for the same events (asyncua: an ERROR and a traceback per
    disconnect, even CRITICAL ones; pymodbus: a warning per failed request or connect) are
    shown only at log level debug."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("asyncua", "pymodbus"):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
