"""``shopfloor up``: the whole stack on one machine, one process per service.

Writes every config into a work directory (so a user can read and reuse them),
starts broker, simulated plant, gateway, edge agent and server in that order,
shows what is starting and what is ready, prints the URL, and on Ctrl-C stops
everything in reverse order.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from shopfloor.broker import mosquitto_conf
from shopfloor.config import ConfigError, load_yaml
from shopfloor.errors import ShopfloorError
from shopfloor.pids import SUPERVISOR, PidDir

DEMO_SCENARIO = Path(__file__).parent / "demo" / "scenario.yaml"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
        return True
    return False


class StartupError(ShopfloorError, RuntimeError):
    """A service did not come up, or stopped; the message says which and where its log is."""


@dataclass
class StackFiles:
    workdir: Path
    scenario: Path
    truth: Path
    edge: Path
    gateway: Path
    server: Path
    registry: Path
    store: Path
    machine_ports: list[int]


def write_configs(workdir: Path, scenario: dict[str, Any], *, mqtt_port: int, http_port: int,
                  share_group: str | None = "gateways",
                  influxdb: dict[str, Any] | None = None,
                  server_reads_influxdb: bool = False,
                  calendar: dict[str, Any] | None = None) -> StackFiles:
    """Write scenario, edge, gateway, registry and server configs for one local stack.

    Machine ports in the scenario are replaced by free loopback ports.
    """
    from shopfloor.demo.configs import edge_config_from_scenario, registry_from_scenario

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = copy.deepcopy(scenario)
    ports = []
    for area in scenario["areas"]:
        for line in area["lines"]:
            for m in line["machines"]:
                m["host"] = LOOPBACK
                m["port"] = free_port()
                ports.append(m["port"])
    mqtt = {"host": LOOPBACK, "port": mqtt_port}
    store = workdir / "store.db"
    sinks: dict[str, Any] = {"embedded": {"path": str(store)}}
    if influxdb:
        sinks["influxdb"] = influxdb
    docs = {
        "scenario.yaml": scenario,
        "edge.yaml": edge_config_from_scenario(
            scenario, agent_id="edge-1", mqtt=mqtt, outbox_path=str(workdir / "outbox.db")),
        "gateway.yaml": {"mqtt": mqtt, "share_group": share_group, "store": sinks},
        "registry.yaml": registry_from_scenario(scenario),
        "server.yaml": {
            "registry": "registry.yaml",
            "store": {"influxdb": influxdb} if server_reads_influxdb and influxdb
            else {"embedded": {"path": str(store)}},
            "http": {"host": LOOPBACK, "port": http_port},
            **({"oee": {"calendar": calendar}} if calendar else {}),
        },
    }
    for name, doc in docs.items():
        (workdir / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return StackFiles(workdir, workdir / "scenario.yaml", workdir / "truth.jsonl",
                      workdir / "edge.yaml", workdir / "gateway.yaml", workdir / "server.yaml",
                      workdir / "registry.yaml", store, ports)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_ORDER = ("server", "edge", "gateway", "plant", "broker")  # reverse start order


def _interrupt(_signum: int, _frame: Any) -> None:
    """The first stop signal raises KeyboardInterrupt; later ones only say that stopping
    is under way, so nothing interrupts the stop (a second Ctrl-C left services running)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _already_stopping)
    raise KeyboardInterrupt


def _already_stopping(signum: int, _frame: Any) -> None:
    print(f"  {signal.Signals(signum).name}: already stopping, a moment ...")


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Stop signals that arrive inside are handled (as before) when it ends."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers belong to the main thread
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _f: held.append(signum))
                for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])


@dataclass
class Supervisor:
    """Starts services as child processes, reports progress, stops them in reverse."""

    logdir: Path
    out: Callable[[str], None] = print
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    pids: PidDir | None = None  # where `shopfloor up` records what it started

    def start(self, name: str, argv: list[str], ready: Callable[[], bool],
              detail: str = "", timeout: float = 60.0) -> subprocess.Popen:
        self.logdir.mkdir(parents=True, exist_ok=True)
        log_path = self.logdir / f"{name}.log"
        self.out(f"  starting {name:<10} {detail}")
        # a Ctrl-C between the child's start and its record would orphan it: held until then
        with _signals_held():
            with open(log_path, "ab") as log:
                # own session: a terminal's Ctrl-C reaches only `shopfloor up`, which then
                # stops the services in reverse order (the gateway drains before the broker)
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            self.procs.append((name, proc))
            if self.pids is not None:
                self.pids.record(name, proc.pid)
        t = time.monotonic()
        while not ready():
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise StartupError(f"{name} exited with code {proc.returncode}; "
                                   f"its log ({log_path}) ends with:\n{tail}")
            if time.monotonic() - t > timeout:
                raise StartupError(f"{name} not ready after {timeout:.0f}s; see {log_path}")
            time.sleep(0.1)
        self.out(f"  ready    {name:<10} ({time.monotonic() - t:.1f}s)")
        return proc

    def exited(self) -> list[tuple[str, int]]:
        """(name, exit code) of every service that has exited."""
        return [(name, proc.returncode) for name, proc in self.procs if proc.poll() is not None]

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM each service in reverse order (SIGKILL after ``timeout``). A signal that
        arrives meanwhile (a second Ctrl-C) is told to wait: stopping is not interrupted."""
        main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, self._still_stopping) for s in STOP_SIGNALS} \
            if main else {}
        try:
            while self.procs:
                name, proc = self.procs[-1]
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                self.procs.pop()
                if self.pids is not None:
                    self.pids.forget(name)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _still_stopping(self, signum: int, _frame: Any) -> None:
        left = ", ".join(name for name, _ in reversed(self.procs)) or "nothing"
        self.out(f"  {signal.Signals(signum).name}: already stopping ({left} left), "
                 "a moment ...")


def shopfloor_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "shopfloor", *args]


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def start_broker(sup: Supervisor, workdir: Path, kind: str) -> tuple[int, bool]:
    """Start Mosquitto or the embedded broker; returns (port, supports shared subscriptions)."""
    port = free_port()
    exe = mosquitto_path() if kind in ("auto", "mosquitto") else None
    if kind == "mosquitto" and exe is None:
        raise ConfigError("--broker mosquitto: mosquitto is not installed "
                          "(apt-get install mosquitto), or use --broker embedded")
    if exe:
        conf = workdir / "mosquitto.conf"
        conf.write_text(mosquitto_conf(LOOPBACK, port, workdir))
        sup.start("broker", [exe, "-c", str(conf)], lambda: port_open(port),
                  f"(mosquitto on {LOOPBACK}:{port})")
        return port, True
    sup.start("broker", [sys.executable, "-m", "shopfloor.broker", LOOPBACK, str(port)],
              lambda: port_open(port), f"(embedded broker on {LOOPBACK}:{port})")
    return port, False


def _healthy(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=1).status_code == 200
    return False


def demo_calendar(scenario: dict[str, Any], now: float) -> dict[str, Any] | None:
    """A shift calendar (UTC) whose daily shift is the scenario's simulated shift when
    it starts now, so the dashboard's current shift and trend by shift follow it."""
    tl = scenario.get("timeline") or {}
    lead_in, duration = float(tl.get("lead_in_s", 0)), float(tl.get("duration_s", 0))
    if not 1 <= duration < 86400:
        return None
    start = datetime.fromtimestamp(round(now + lead_in), UTC)
    end = start + timedelta(seconds=round(duration))
    shift = {"name": "demo", "start": start.strftime("%H:%M:%S"),
             "end": end.strftime("%H:%M:%S")}
    return {"timezone": "UTC", "weekly": {d: [shift] for d in
                                          ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}


def live_machines(state_url: str, scope: str) -> int:
    """How many machines under ``scope`` have a live (not OFFLINE) state now."""
    with contextlib.suppress(httpx.HTTPError, ValueError):
        r = httpx.get(state_url, params={"scope": scope}, timeout=2)
        if r.status_code == 200:
            return sum(m["state"] != "OFFLINE" for m in r.json())
    return 0


def wait_for_data(state_url: str, scope: str, machines: int, timeout: float = 30.0,
                  out: Callable[[str], None] = print) -> bool:
    """The last start-up step: wait until every machine's state has reached the server."""
    out(f"  waiting  data       (first samples from {machines} machines)")
    t = time.monotonic()
    live = 0
    while time.monotonic() - t < timeout:
        live = live_machines(state_url, scope)
        if live >= machines:
            out(f"  ready    data       ({live}/{machines} machines reporting, "
                f"{time.monotonic() - t:.1f}s)")
            return True
        time.sleep(0.3)
    out(f"  note     data       only {live}/{machines} machines reporting after "
        f"{timeout:.0f}s; see the logs")
    return False


def run(workdir: Path, port: int, scenario: Path | None, broker: str,
        duration_s: float | None) -> None:
    # the services run in their own sessions: a closed terminal (SIGHUP) or a SIGTERM
    # must stop them too, like Ctrl-C; SIGINT is set too, as it may arrive ignored (a
    # background job of a script)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)
    workdir = workdir.resolve()
    scenario_doc = load_yaml(scenario or DEMO_SCENARIO)
    if port_open(port):
        raise ConfigError(f"--port {port}: something is already listening there; "
                          "choose another port")
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"shopfloor up: work directory {workdir}")
    pids = PidDir(workdir)
    pids.clear_leftovers(STOP_ORDER)
    pids.record(SUPERVISOR, os.getpid())
    sup = Supervisor(workdir / "logs", pids=pids)
    try:
        mqtt_port, shared = start_broker(sup, workdir, broker)
        files = write_configs(workdir, scenario_doc, mqtt_port=mqtt_port, http_port=port,
                              share_group="gateways" if shared else None,
                              calendar=demo_calendar(scenario_doc, time.time()))
        n = len(files.machine_ports)
        sup.start("plant", shopfloor_cmd("simulate", "--scenario", str(files.scenario),
                                         "--truth", str(files.truth)),
                  lambda: all(port_open(p) for p in files.machine_ports),
                  f"({n} simulated machines, OPC UA and Modbus)")
        sup.start("gateway", shopfloor_cmd("gateway", "--config", str(files.gateway)),
                  lambda: files.store.exists(), f"(embedded store {files.store})")
        sup.start("edge", shopfloor_cmd("edge", "--config", str(files.edge)),
                  lambda: (workdir / "outbox.db").exists(), "(edge agent edge-1)")
        url = f"http://{LOOPBACK}:{port}"
        sup.start("server", shopfloor_cmd("server", "--config", str(files.server)),
                  lambda: _healthy(f"{url}/healthz"), "(API and dashboard)")
        wait_for_data(f"{url}/api/v1/state", scenario_doc["enterprise"]["id"], n)
        print(f"\nshopfloor is up: dashboard {url}/  API {url}/docs\n"
              f"configs and logs in {workdir}. Press Ctrl-C to stop.")
        deadline = time.monotonic() + duration_s if duration_s else None
        shift_over = False
        while deadline is None or time.monotonic() < deadline:
            for name, code in sup.exited():
                if name == "plant" and code == 0:
                    if not shift_over:
                        print("the simulated shift is over: the machines are offline now; "
                              "the dashboard keeps the data. Ctrl-C stops.")
                    shift_over = True
                else:
                    raise StartupError(f"{name} stopped unexpectedly (exit code {code}); "
                                       f"see {workdir}/logs/{name}.log")
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping ...")
    finally:
        sup.stop_all()
        pids.forget(SUPERVISOR)
        print("shopfloor stopped.")
