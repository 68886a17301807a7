"""``shopfloor up``: the whole stack on one machine, one process per service.

Writes every config into a work directory (so a user can read and reuse them),
starts broker, simulated plant, gateway, edge agent and server in that order,
shows what is starting and what is ready, prints the URL, and on Ctrl-C stops
everything in reverse order. A cluster file (``shopfloor.demo.stacks``) runs one such
stack per enterprise, in ``WORKDIR/ENTERPRISE``, each federating to a cluster server;
history is written into each new store first (``shopfloor history``, side by side).
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

from shopfloor.broker import mosquitto_conf
from shopfloor.config import ConfigError
from shopfloor.pids import SUPERVISOR, PidDir
from shopfloor.supervisor import (
    LOOPBACK,
    STOP_SIGNALS,
    StartupError,
    Supervisor,
    free_port,
    interrupt,
    logged,
    port_open,
    shopfloor_cmd,
)

if TYPE_CHECKING:
    from shopfloor.demo.stacks import ClusterPlan, Stack

DEMO_SCENARIO = Path(__file__).parent / "demo" / "scenario.yaml"


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
                  calendar: dict[str, Any] | None = None,
                  registry: dict[str, Any] | None = None,
                  federation: dict[str, Any] | None = None) -> StackFiles:
    """Write scenario, edge, gateway, registry and server configs for one local stack
    (``registry``: instead of the one made from the scenario; ``federation``: the
    server's section). Machine ports in the scenario are replaced by free loopback ports.
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
        "registry.yaml": registry or registry_from_scenario(scenario),
        "server.yaml": {
            "registry": "registry.yaml",
            "store": {"influxdb": influxdb} if server_reads_influxdb and influxdb
            else {"embedded": {"path": str(store)}},
            "http": {"host": LOOPBACK, "port": http_port},
            **({"oee": {"calendar": calendar}} if calendar else {}),
            **({"federation": federation} if federation else {}),
        },
    }
    for name, doc in docs.items():
        (workdir / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    if federation:  # it holds the enterprise's credential
        (workdir / "server.yaml").chmod(0o600)
    return StackFiles(workdir, workdir / "scenario.yaml", workdir / "truth.jsonl",
                      workdir / "edge.yaml", workdir / "gateway.yaml", workdir / "server.yaml",
                      workdir / "registry.yaml", store, ports)


# reverse start order; in a cluster each enterprise's services are "ENTERPRISE.NAME"
STOP_ORDER = ("server", "edge", "gateway", "plant", "broker", "history", "cluster")


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def broker_exe(kind: str) -> str | None:
    """Mosquitto's path for ``--broker`` (None: the embedded broker, which has no shared
    subscriptions)."""
    exe = mosquitto_path() if kind in ("auto", "mosquitto") else None
    if kind == "mosquitto" and exe is None:
        raise ConfigError("--broker mosquitto: mosquitto is not installed "
                          "(apt-get install mosquitto), or use --broker embedded")
    return exe


def start_broker(sup: Supervisor, workdir: Path, exe: str | None, port: int,
                 name: str = "broker") -> None:
    """Start Mosquitto (``exe``) or the embedded broker on ``port``."""
    if exe:
        conf = workdir / "mosquitto.conf"
        conf.write_text(mosquitto_conf(LOOPBACK, port, workdir))
        sup.start(name, [exe, "-c", str(conf)], lambda: port_open(port),
                  f"(mosquitto on {LOOPBACK}:{port})")
    else:
        sup.start(name, [sys.executable, "-m", "shopfloor.broker", LOOPBACK, str(port)],
                  lambda: port_open(port), f"(embedded broker on {LOOPBACK}:{port})")


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


@dataclass
class StackRun:
    """One enterprise's stack: where it runs and the configs written for it."""

    stack: Stack
    prefix: str  # "" alone, "ENTERPRISE." in a cluster (service, log and pid names)
    workdir: Path
    port: int
    mqtt_port: int = field(default_factory=free_port)
    fresh: bool = True  # no store yet (history goes only into a new store)
    files: StackFiles | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def write_all(runs: list[StackRun], plan: ClusterPlan, cluster_port: int | None,
              shared: bool, now: float) -> Path | None:
    """Every stack's configs and, for a cluster, the cluster server's (its path): each
    enterprise gets a new credential, the cluster keeps only its SHA-256."""
    from shopfloor.demo.stacks import registry_of, scenario_doc
    from shopfloor.server.auth import token_hash

    accounts = []
    for r in runs:
        stack, doc = r.stack, scenario_doc(r.stack)
        federation = None
        if cluster_port is not None:
            token = secrets.token_urlsafe(24)
            accounts.append({"id": stack.enterprise, "sha256": token_hash(token),
                             "name": stack.scenario.enterprise.name or stack.enterprise})
            federation = {"cluster_url": f"http://{LOOPBACK}:{cluster_port}",
                          "enterprise": stack.enterprise, "token": token, "interval_s": 10,
                          "backfill_days": min(stack.history.days + 2, 400)}
        r.fresh = not (r.workdir / "store.db").exists()
        r.files = write_configs(
            r.workdir, doc, mqtt_port=r.mqtt_port, http_port=r.port,
            share_group="gateways" if shared else None,
            calendar=(stack.calendar.model_dump(mode="json") if stack.calendar
                      else demo_calendar(doc, now)),
            registry=registry_of(stack, plan.cluster), federation=federation)
    if cluster_port is None:
        return None
    assert plan.cluster is not None
    path = runs[0].workdir.parent / "cluster" / "cluster.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "name": plan.cluster.name or plan.cluster.id, "database": "cluster.db",
        "http": {"host": LOOPBACK, "port": cluster_port}, "region": plan.region,
        "enterprises": accounts, "auth": {"anonymous_read": True}}, sort_keys=False))
    return path


def _history_jobs(runs: list[StackRun]) -> list[tuple[str, list[str], str]]:
    """``shopfloor history`` for each new store of a stack that wants history."""
    jobs = []
    for r in runs:
        days = r.stack.history.days
        if days and r.fresh and r.files is not None:
            jobs.append((f"{r.prefix}history", shopfloor_cmd(
                "history", "--config", str(r.files.server), "--scenario",
                str(r.files.scenario), "--days", str(days), "--improvement",
                str(r.stack.history.improvement)), f"({days} days of past shifts)"))
    return jobs


def _start_stack(sup: Supervisor, r: StackRun, exe: str | None) -> int:
    """Broker, plant, gateway, edge and server of one enterprise; its machine count."""
    assert r.files is not None
    p, files = r.prefix, r.files
    start_broker(sup, r.workdir, exe, r.mqtt_port, f"{p}broker")
    n = len(files.machine_ports)
    sup.start(f"{p}plant", shopfloor_cmd("simulate", "--scenario", str(files.scenario),
                                         "--truth", str(files.truth)),
              lambda: all(port_open(port) for port in files.machine_ports),
              f"({n} simulated machines, OPC UA and Modbus)")
    sup.start(f"{p}gateway", shopfloor_cmd("gateway", "--config", str(files.gateway)),
              logged(sup.logdir / f"{p}gateway.log", "subscribed to"),
              f"(embedded store {files.store})")
    sup.start(f"{p}edge", shopfloor_cmd("edge", "--config", str(files.edge)),
              lambda: (r.workdir / "outbox.db").exists(),
              f"(edge agent of {r.stack.enterprise})")
    sup.start(f"{p}server", shopfloor_cmd("server", "--config", str(files.server)),
              lambda: _healthy(f"{r.url}/healthz"), f"(API and dashboard on {r.url})")
    return n


def run(workdir: Path, port: int, scenario: Path | None, broker: str,
        duration_s: float | None, history_days: int | None = None) -> None:
    """Run a scenario (one enterprise) or a cluster file (several, a cluster server on
    ``port`` and the enterprises' servers on the ports after it) until Ctrl-C."""
    from shopfloor.demo.stacks import load_up_file

    # the services run in their own sessions: a closed terminal (SIGHUP) or a SIGTERM
    # must stop them too, like Ctrl-C; SIGINT is set too, as it may arrive ignored (a
    # background job of a script)
    for sig in STOP_SIGNALS:
        signal.signal(sig, interrupt)
    workdir = workdir.resolve()
    plan = load_up_file(scenario or DEMO_SCENARIO)
    if history_days is not None:
        if not 0 <= history_days <= 398:
            raise ConfigError(f"--history-days {history_days}: give 0 to 398 days")
        for stack in plan.enterprises:
            stack.history.days = history_days
    exe = broker_exe(broker)
    clustered = plan.cluster is not None
    runs = [StackRun(s, f"{s.enterprise}." if clustered else "",
                     workdir / s.enterprise if clustered else workdir,
                     port + 1 + i if clustered else port)
            for i, s in enumerate(plan.enterprises)]
    for p in [port, *(r.port for r in runs)]:
        if port_open(p):
            raise ConfigError(f"--port {port}: port {p} is already in use; choose another "
                              "port" + (" (a cluster uses the ones after it too)"
                                        if clustered else ""))
    for r in runs:
        r.workdir.mkdir(parents=True, exist_ok=True)
    print(f"shopfloor up: work directory {workdir}")
    pids = PidDir(workdir)
    pids.clear_leftovers(STOP_ORDER)
    pids.record(SUPERVISOR, os.getpid())
    sup = Supervisor(workdir / "logs", pids=pids)
    try:
        cluster_cfg = write_all(runs, plan, port if clustered else None, exe is not None,
                                time.time())
        sup.jobs(_history_jobs(runs))
        curl = f"http://{LOOPBACK}:{port}"
        if cluster_cfg is not None:
            sup.start("cluster", shopfloor_cmd("cluster", "--config", str(cluster_cfg)),
                      lambda: _healthy(f"{curl}/healthz"), f"(cluster server on {curl})")
        counts = [_start_stack(sup, r, exe) for r in runs]
        for r, n in zip(runs, counts, strict=True):
            wait_for_data(f"{r.url}/api/v1/state", r.stack.enterprise, n)
        if clustered:
            print(f"\nshopfloor is up: cluster report {curl}/api/v1/cluster/report  "
                  f"API {curl}/docs")
            for r in runs:
                print(f"  {r.stack.enterprise:<10} dashboard {r.url}/")
        else:
            print(f"\nshopfloor is up: dashboard {runs[0].url}/  API {runs[0].url}/docs")
        print(f"configs and logs in {workdir}. Press Ctrl-C to stop.")
        _watch(sup, duration_s)
    except KeyboardInterrupt:
        print("\nstopping ...")
    finally:
        sup.stop_all()
        pids.forget(SUPERVISOR)
        print("shopfloor stopped.")


def _watch(sup: Supervisor, duration_s: float | None) -> None:
    """Until ``duration_s``: a plant that ends its shift is fine, any other exit is not."""
    deadline = time.monotonic() + duration_s if duration_s else None
    shift_over = False
    while deadline is None or time.monotonic() < deadline:
        for name, code in sup.exited():
            if name.rsplit(".", 1)[-1] == "plant" and code == 0:
                if not shift_over:
                    print("the simulated shift is over: the machines are offline now; "
                          "the dashboard keeps the data. Ctrl-C stops.")
                shift_over = True
            else:
                raise StartupError(f"{name} stopped unexpectedly (exit code {code}); "
                                   f"see {sup.logdir}/{name}.log")
        time.sleep(0.5)
