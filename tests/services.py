"""Real services for integration tests: Mosquitto, InfluxDB 1.x, VictoriaMetrics,
PostgreSQL.

Each runs as a child process on a free loopback port, with its state in a temp
directory, and is stopped (and waited for) when the test is done.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shopfloor.broker import mosquitto_conf

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {LOOPBACK}:{port} after {timeout}s")


def require(binary: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
    if path is None:
        raise RuntimeError(f"{binary} is not installed: run `make test-deps` (see README)")
    return path


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


@dataclass
class Mosquitto:
    port: int
    proc: subprocess.Popen
    conf: Path

    def kill(self) -> None:
        """A crash: what it acknowledged since its last autosave is lost."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        """A clean stop (SIGTERM): it saves its sessions and queues first."""
        stop(self.proc)

    def start(self) -> None:
        self.proc = _start_mosquitto(self.conf, self.port)


def _start_mosquitto(conf: Path, port: int) -> subprocess.Popen:
    log = open(conf.with_suffix(".log"), "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen([require("mosquitto"), "-c", str(conf)], stdout=log, stderr=log)
    wait_for_port(port, proc=proc)
    return proc


@contextlib.contextmanager
def mosquitto(workdir: Path, extra: str = "") -> Iterator[Mosquitto]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(mosquitto_conf(LOOPBACK, port, workdir, "autosave_interval 1\n"
                                   "log_dest stderr\nlog_type error\nlog_type warning\n"
                                   + extra))
    broker = Mosquitto(port, _start_mosquitto(conf, port), conf)
    try:
        yield broker
    finally:
        stop(broker.proc)


@dataclass
class InfluxDB1:
    url: str
    database: str

    def query(self, q: str) -> dict:
        r = httpx.get(f"{self.url}/query", params={"db": self.database, "q": q}, timeout=30)
        r.raise_for_status()
        return r.json()


@contextlib.contextmanager
def influxdb1(workdir: Path, database: str = "shopfloor") -> Iterator[InfluxDB1]:
    """Debian's InfluxDB 1.6 on free loopback ports, with a fresh database."""
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, rpc_port = free_port(), free_port()
    conf = workdir / "influxdb.conf"
    conf.write_text(
        "reporting-disabled = true\n"
        f'bind-address = "{LOOPBACK}:{rpc_port}"\n'
        f'[meta]\n  dir = "{workdir}/meta"\n'
        f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n'
        "  query-log-enabled = false\n"
        f'[http]\n  bind-address = "{LOOPBACK}:{http_port}"\n  log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n"
        "[continuous_queries]\n  enabled = false\n"
        "[subscriber]\n  enabled = false\n"
    )
    log = open(workdir / "influxd.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([require("influxd"), "-config", str(conf)], stdout=log, stderr=log)
    try:
        wait_for_port(http_port, timeout=30, proc=proc)
        url = f"http://{LOOPBACK}:{http_port}"
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/ping", timeout=2).status_code != 204:
            if time.monotonic() > deadline:
                raise TimeoutError("influxd did not answer /ping")
            time.sleep(0.1)
        httpx.post(f"{url}/query", params={"q": f'CREATE DATABASE "{database}"'},
                   timeout=10).raise_for_status()
        yield InfluxDB1(url, database)
    finally:
        stop(proc)
        log.close()


@dataclass
class VictoriaMetrics:
    url: str


@contextlib.contextmanager
def victoria_metrics(workdir: Path) -> Iterator[VictoriaMetrics]:
    """Debian's VictoriaMetrics: accepts InfluxDB's v2 write endpoint (/api/v2/write)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(workdir / "vm.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [require("victoria-metrics"), f"-httpListenAddr={LOOPBACK}:{port}",
         f"-storageDataPath={workdir}/vm-data", "-search.latencyOffset=0s"],
        stdout=log, stderr=log)
    try:
        wait_for_port(port, timeout=30, proc=proc)
        yield VictoriaMetrics(f"http://{LOOPBACK}:{port}")
    finally:
        stop(proc)
        log.close()


@dataclass
class PostgreSQL:
    port: int

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@{LOOPBACK}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(f"host={LOOPBACK} port={self.port} user=postgres "
                             "dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: run `make test-deps`")
    return str(found[-1])


@contextlib.contextmanager
def postgresql() -> Iterator[PostgreSQL]:
    """Debian's PostgreSQL on a free loopback port, its cluster in a temp dir (run as
    the ``postgres`` user when we are root: initdb refuses root), trust auth on loopback."""
    import os
    import tempfile

    as_user: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="shopfloor-pg-"))
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(workdir, "postgres")
    data, port = workdir / "data", free_port()
    subprocess.run([*as_user, _pg_bin("initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True)
    log = workdir / "postgres.log"
    subprocess.run([*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                    "-o", f"-h {LOOPBACK} -p {port} -k {workdir} -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        wait_for_port(port, timeout=30)
        yield PostgreSQL(port)
    finally:
        subprocess.run([*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


def start_plant_stack(sup: Any, files: Any, *, gateway_argv: list[str] | None = None,
                      edge_argv: list[str] | None = None, outbox: Path | None = None
                      ) -> tuple[subprocess.Popen, subprocess.Popen, subprocess.Popen]:
    """Under the ``shopfloor.up.Supervisor`` ``sup``, start the simulated plant (with its
    truth log), the gateway and the edge of the ``StackFiles`` ``files``, each waited for
    until it is ready; returns (plant, gateway, edge)."""
    from shopfloor.supervisor import shopfloor_cmd

    outbox = outbox or files.workdir / "outbox.db"
    plant = sup.start("plant", shopfloor_cmd(
        "simulate", "--scenario", str(files.scenario), "--truth", str(files.truth)),
        files.truth.exists)
    gateway = sup.start("gateway", gateway_argv or shopfloor_cmd(
        "gateway", "--config", str(files.gateway)), files.store.exists)
    edge = sup.start("edge", edge_argv or shopfloor_cmd(
        "edge", "--config", str(files.edge)), outbox.exists)
    return plant, gateway, edge


def sigint_default() -> None:
    """``preexec_fn`` for a child a test stops with SIGINT: SIGINT as a terminal gives it,
    whatever this process inherited (a suite run from a background job has it ignored)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
