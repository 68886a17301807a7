"""Serve a scenario's machines and write its ground-truth log.

Order: start every server, wait until all listen, log one ``ready`` line per
machine, then start the timeline clock (t0), so the lead-in begins after the
servers are ready. All machines run in one asyncio loop; each sleeps until its
next event and writes it with the event's own timestamp. The run ends after
``duration_s`` (default: lead-in + shift + lead-out; extra time stays NO_SHIFT)
or when stopped (SIGINT/SIGTERM in ``run``), and the truth log is flushed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shopfloor.config import ConfigError
from shopfloor.contract import State

from .machine import Event, Kind, MachineModel
from .scenario import MachineSpec, Scenario, load_scenario
from .truth_log import TruthWriter

log = logging.getLogger("shopfloor.simulators")


class MachineServer(Protocol):
    url: str

    async def start(self) -> None: ...
    async def apply(self, ev: Event, ts_ns: int) -> None: ...
    async def stop(self) -> None: ...
    async def go_offline(self) -> None: ...
    async def go_online(self) -> None: ...


def make_server(spec: MachineSpec) -> MachineServer:
    if spec.protocol == "opcua":
        from .opcua_machine import OpcUaMachine
        return OpcUaMachine(spec)
    from .modbus_machine import ModbusMachine
    return ModbusMachine(spec)


@dataclass
class _Running:
    spec: MachineSpec
    model: MachineModel
    server: MachineServer
    state: State | None = None  # the state being served and since when
    since_ns: int = 0
    reason: int = 0  # the PLC reason code served with it (0: none)
    offline_ns: int | None = None  # in an outage since (truth log)


class Simulation:
    """A scenario run: ``start()`` (servers up, clock started), ``run()``, ``close()``.

    Between ``start()`` and ``close()`` the servers answer clients; after ``run()``
    returns they keep serving the final snapshot until ``close()``.
    """

    def __init__(self, scenario: Scenario, truth_path: Path | str | None = None,
                 duration_s: float | None = None, *, source: str = "<scenario>"):
        self.scenario = scenario
        self.source = source
        self.end_s = scenario.timeline.total_s if duration_s is None else float(duration_s)
        if self.end_s < 0:
            raise ValueError("duration_s must be >= 0")
        self.truth_path = truth_path
        self.machines = [
            _Running(spec, MachineModel(spec, scenario.timeline, scenario.seed), make_server(spec))
            for spec in scenario.machines()
        ]
        self.t0_ns = 0
        self._t0_mono = 0.0
        self._truth: TruthWriter | None = None
        self._stop = asyncio.Event()
        self._started: list[MachineServer] = []

    def ts_ns(self, t: float) -> int:
        """Timeline seconds to epoch ns, on whole microseconds (what OPC UA can serve)."""
        return self.t0_ns + round(t * 1e6) * 1000

    def stop(self) -> None:
        """End the run early (safe from a signal handler in the loop)."""
        self._stop.set()

    async def start(self) -> None:
        """Start every server, wait until all listen, then start the timeline clock."""
        async def up(m: _Running) -> None:
            await m.server.start()
            self._started.append(m.server)

        results = await asyncio.gather(*(up(m) for m in self.machines), return_exceptions=True)
        failed = [(m, r) for m, r in zip(self.machines, results, strict=True)
                  if isinstance(r, BaseException)]
        if failed:
            await self.close()
            m, exc = failed[0]
            if isinstance(exc, OSError | RuntimeError):  # pymodbus: RuntimeError
                raise ConfigError(f"{self.source}: machine {m.spec.id}: cannot listen on "
                                  f"{m.spec.host}:{m.spec.port} ({exc})") from exc
            raise exc
        for m in self.machines:
            log.info("%s %s %s ready", m.spec.id, m.spec.protocol, m.server.url)
        loop = asyncio.get_running_loop()
        self.t0_ns = time.time_ns() // 1000 * 1000
        self._t0_mono = loop.time()
        tl = self.scenario.timeline
        self._truth = TruthWriter(self.truth_path)
        self._truth.scenario(
            self.scenario, [m.spec for m in self.machines], t0=self.t0_ns,
            shift_start=self.ts_ns(tl.lead_in_s),
            shift_end=self.ts_ns(tl.lead_in_s + tl.duration_s))
        log.info("clock started: lead-in %.1f s, shift %.1f s, run %.1f s",
                 tl.lead_in_s, tl.duration_s, self.end_s)

    async def _sleep_until(self, t: float) -> None:
        delay = self._t0_mono + t - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _drive(self, m: _Running) -> None:
        assert self._truth is not None
        asset = m.spec.asset_id
        for ev in m.model.events():
            if ev.t >= self.end_s:
                break
            await self._sleep_until(ev.t)
            ts = self.ts_ns(ev.t)
            await m.server.apply(ev, ts)
            if ev.kind is Kind.STATE:
                if m.state is not None:
                    self._truth.state(asset, m.state, m.since_ns, ts, self._reason(m))
                m.state, m.since_ns, m.reason = ev.state, ts, ev.stop_reason
            elif ev.kind is Kind.PART:
                self._truth.part(asset, ts, ev.reject, ev.product,
                                 m.spec.ideal_cycle_time(ev.product) if ev.product else None)
        await self._sleep_until(self.end_s)

    @staticmethod
    def _reason(m: _Running) -> tuple[int, str] | None:
        """(PLC code, reason code) of the interval being served, if it has one."""
        if not m.reason or m.spec.stop_reasons is None:
            return None
        return m.reason, m.spec.stop_reasons.codes()[m.reason]

    def _now_ns(self) -> int:
        return self.ts_ns(asyncio.get_running_loop().time() - self._t0_mono)

    async def _outage(self, m: _Running) -> None:
        """The device's network outage: its server down, the machine running on."""
        assert self._truth is not None and m.spec.outage is not None
        o = m.spec.outage
        if o.at_s >= self.end_s:
            return
        await self._sleep_until(o.at_s)
        m.offline_ns = self._now_ns()
        await m.server.go_offline()
        log.info("%s: outage for %.1f s", m.spec.id, o.duration_s)
        await self._sleep_until(min(o.end_s, self.end_s))
        await m.server.go_online()  # listening again from here on
        self._truth.outage(m.spec.asset_id, m.offline_ns, self._now_ns())
        m.offline_ns = None

    async def run(self) -> None:
        """Drive every machine until the end of the run or ``stop()``."""
        assert self._truth is not None, "start() first"
        drive = asyncio.gather(*(self._drive(m) for m in self.machines),
                               *(self._outage(m) for m in self.machines if m.spec.outage))
        stopper = asyncio.create_task(self._stop.wait())
        error: BaseException | None = None
        try:
            await asyncio.wait({drive, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            drive.cancel()
            try:
                await drive
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # a server write failed: still close the log
                error = exc
            now_s = asyncio.get_running_loop().time() - self._t0_mono
            end_ns = self.ts_ns(min(now_s, self.end_s))
            for m in self.machines:  # the interval still being served ends now
                if m.state is not None:
                    self._truth.state(m.spec.asset_id, m.state, m.since_ns,
                                      max(end_ns, m.since_ns), self._reason(m))
                    m.state = None
                if m.offline_ns is not None:  # stopped in an outage
                    self._truth.outage(m.spec.asset_id, m.offline_ns, max(end_ns, m.offline_ns))
                    m.offline_ns = None
            log.info("run finished after %.1f s", min(now_s, self.end_s))
        if error is not None:
            raise error

    async def close(self) -> None:
        """Stop the servers and close the truth log."""
        servers, self._started = self._started, []
        await asyncio.gather(*(s.stop() for s in servers), return_exceptions=True)
        if self._truth is not None:
            self._truth.close()


async def simulate(scenario: Scenario | Path | str, truth_path: Path | str | None = None,
                   duration_s: float | None = None, *, install_signals: bool = False) -> None:
    """The async core of ``run``: start, drive until the end (or a signal), close."""
    source = "<scenario>"
    if not isinstance(scenario, Scenario):
        source = str(scenario)
        scenario = load_scenario(scenario)
    sim = Simulation(scenario, truth_path, duration_s, source=source)
    if install_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, sim.stop)
    try:
        await sim.start()
        await sim.run()
    finally:
        await sim.close()


def run(scenario_path: Path | str, truth_path: Path | str | None = None,
        duration_s: float | None = None) -> None:
    """Serve the scenario (blocking); SIGINT/SIGTERM stop it cleanly."""
    asyncio.run(simulate(scenario_path, truth_path, duration_s, install_signals=True))
