"""Fault tests on the real stack: simulated plant -> edge -> Mosquitto -> gateway ->
embedded store + InfluxDB 1.x, every process the real ``shopfloor`` command, loopback only.

While the plant runs, one fault at a time: SIGKILL Mosquitto (restarted after 10 s),
SIGKILL the gateway (restarted), InfluxDB stopped for 60 s, SIGKILL the edge agent
(restarted). Afterwards both stores hold exactly the samples the edge produced.

Ground truth is edge-side: every batch the agent produced is committed to its outbox
before it is published, and with a replay window larger than the run the outbox keeps
them all, acknowledged or not. Its (device, tag, ts) set is what the stores must hold.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from services import free_port, require, start_plant_stack, stop, wait_for_port

from shopfloor.supervisor import Supervisor, shopfloor_cmd
from shopfloor.up import write_configs

pytestmark = pytest.mark.e2e

Key = tuple[str, str, int]  # (asset id, tag, ts)

SCENARIO = {
    "seed": 5,
    "enterprise": {"id": "acme", "name": "Acme"},
    "site": {"id": "plant1", "name": "Plant 1"},
    "timeline": {"lead_in_s": 2, "duration_s": 140, "lead_out_s": 2},
    "defaults": {
        "ideal_cycle_time_s": 0.3, "speed_factor": 1.1, "reject_rate": 0.05,
        "durations_s": {"PRODUCING": [3, 6], "IDLE": [1, 2], "DOWN": [1, 2],
                        "SETUP": [1, 2], "PLANNED_STOP": [1, 2]},
    },
    "areas": [{"id": "machining", "name": "Machining", "lines": [
        {"id": "line1", "name": "Line 1", "machines": [
            {"id": "cnc-01", "protocol": "opcua", "port": 1},
            {"id": "press-01", "protocol": "modbus", "port": 2},
            {"id": "press-02", "protocol": "modbus", "port": 3},
        ]}]}],
}


class Influxd:
    """InfluxDB 1.x that can be stopped and started again on the same data and port."""

    def __init__(self, workdir: Path, database: str = "shopfloor"):
        workdir.mkdir(parents=True, exist_ok=True)
        self.port, rpc = free_port(), free_port()
        self.url, self.database = f"http://127.0.0.1:{self.port}", database
        self.conf = workdir / "influxdb.conf"
        self.conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{rpc}"\n'
            f'[meta]\n  dir = "{workdir}/meta"\n'
            f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n'
            "  query-log-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n")
        self.log = workdir / "influxd.log"
        self.proc: subprocess.Popen | None = None
        self.start()
        httpx.post(f"{self.url}/query", params={"q": f'CREATE DATABASE "{database}"'},
                   timeout=10).raise_for_status()

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([require("influxd"), "-config", str(self.conf)],
                                         stdout=log, stderr=log)
        wait_for_port(self.port, timeout=30, proc=self.proc)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/ping", timeout=2).status_code == 204:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("influxd did not answer /ping")
            time.sleep(0.1)

    def stop(self) -> None:
        assert self.proc is not None
        stop(self.proc)

    def keys(self) -> list[Key]:
        r = httpx.get(f"{self.url}/query", params={
            "db": self.database, "epoch": "ns",
            "q": 'SELECT "quality","enterprise","site","area","line","device","tag" '
                 'FROM "samples"'}, timeout=60)
        r.raise_for_status()
        res = r.json()["results"][0]
        out = []
        for s in res.get("series") or []:
            for t, _q, *path, tag in s["values"]:
                out.append(("/".join(path), tag, int(t)))
        return out


def produced(outbox: Path) -> list[Key]:
    """Every sample the edge committed to its outbox (the replay window keeps them all).

    A restarted agent reads a device's current values again; a value with an unchanged
    source timestamp is the same sample twice (same value: checked), one row in a store.
    """
    with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT topic, payload FROM batches").fetchall()
    out, seen = [], {}
    for topic, payload in rows:
        asset = "/".join(topic.split("/")[2:7])
        for s in json.loads(payload)["samples"]:
            key = (asset, s["tag"], int(s["ts"]))  # v2: a decimal string
            assert seen.setdefault(key, (s["v"], s["q"])) == (s["v"], s["q"]), key
            out.append(key)
    return out


def pending(outbox: Path) -> int:
    with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM batches WHERE acked=0").fetchone()[0]


def embedded(store: Path) -> list[Key]:
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT s.enterprise, s.site, s.area, s.line, s.device, s.tag, x.ts "
            "FROM samples x JOIN series s ON s.id = x.series_id").fetchall()
    return [("/".join(r[:5]), r[5], r[6]) for r in rows]


def last_stats(log: Path, pattern: str) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if re.search(pattern, ln)]
    return lines[-1] if lines else "(none)"


def report(what: str, want: list[Key], got: list[Key]) -> str:
    w, g = set(want), set(got)
    return (f"{what}: produced {len(want)} (distinct {len(w)}), stored {len(got)} "
            f"(distinct {len(g)}), missing {len(w - g)}, extra {len(g - w)}")


def tune_for_faults(files) -> None:
    """The edge keeps every batch in its outbox (the ground truth of what was produced)
    and both report stats often; the gateway retries and asks for gaps quickly."""
    edge = yaml.safe_load(files.edge.read_text())
    edge["outbox"]["replay_window"] = 10_000_000  # keeps every batch: the ground truth
    edge["stats_interval_s"] = 5
    files.edge.write_text(yaml.safe_dump(edge))
    gw = yaml.safe_load(files.gateway.read_text())
    gw.update(retry_max_s=2, stats_interval_s=5, completeness={"timeout_s": 3})
    files.gateway.write_text(yaml.safe_dump(gw))


@pytest.mark.timeout(420)
def test_stream_survives_broker_gateway_influx_and_edge_faults(tmp_path, mosquitto):
    influx = Influxd(tmp_path / "influxdb")
    files = write_configs(tmp_path / "stack", SCENARIO, mqtt_port=mosquitto.port,
                          http_port=free_port(),
                          influxdb={"version": 1, "url": influx.url, "database": "shopfloor"})
    outbox = files.workdir / "outbox.db"
    tune_for_faults(files)

    sup = Supervisor(tmp_path / "logs")
    gw_log, edge_log = sup.logdir / "gateway.log", sup.logdir / "edge.log"
    gateway_argv = shopfloor_cmd("gateway", "--config", str(files.gateway))
    edge_argv = shopfloor_cmd("edge", "--config", str(files.edge))

    def count() -> int:
        return len(produced(outbox)) if outbox.exists() else 0

    def restart(name: str, argv: list[str]) -> subprocess.Popen:
        sup.procs = [(n, p) for n, p in sup.procs if n != name]
        return sup.start(name, argv, lambda: True)

    faults: list[str] = []
    try:
        plant, gateway, edge_proc = start_plant_stack(
            sup, files, gateway_argv=gateway_argv, edge_argv=edge_argv, outbox=outbox)
        time.sleep(8)

        n0 = count()
        mosquitto.kill()  # SIGKILL
        time.sleep(10)
        mosquitto.start()
        faults.append(f"mosquitto SIGKILL+10s at {n0} samples produced")
        time.sleep(8)

        n0 = count()
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
        time.sleep(2)
        gateway = restart("gateway", gateway_argv)
        faults.append(f"gateway SIGKILL at {n0}")
        time.sleep(6)

        n0 = count()
        influx.stop()
        time.sleep(60)
        influx.start()
        faults.append(f"influxdb stopped 60s at {n0}")
        time.sleep(6)

        # Mosquitto SIGKILLed while holding messages for the offline gateway's session:
        # what it acknowledged to the edge since its last autosave is gone, unless the
        # gateway's seq-gap replay gets it back from the edge's outbox.
        n0 = count()
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
        time.sleep(4)
        mosquitto.kill()
        mosquitto.start()
        gateway = restart("gateway", gateway_argv)
        faults.append(f"gateway SIGKILL, then mosquitto SIGKILL 4s later, at {n0}")
        time.sleep(6)

        n0 = count()
        edge_proc.send_signal(signal.SIGKILL)
        edge_proc.wait(10)
        time.sleep(2)
        edge_proc = restart("edge", edge_argv)
        faults.append(f"edge SIGKILL at {n0}")

        plant.wait(timeout=120)
        assert plant.returncode == 0
        # the edge publishes what it read last, the gateway stores and replays
        deadline = time.monotonic() + 120
        while True:
            want = produced(outbox)
            got_e, got_i = embedded(files.store), influx.keys()
            if pending(outbox) == 0 and set(got_e) == set(want) == set(got_i):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(2)
        time.sleep(2)  # nothing arrives twice afterwards
        want, got_e, got_i = produced(outbox), embedded(files.store), influx.keys()
        print("\nfaults:", "; ".join(faults))
        print(report("embedded", want, got_e))
        print(report("influxdb", want, got_i))
        print("gateway:", last_stats(gw_log, "gateway: messages="))
        gw_text = gw_log.read_text(errors="replace")
        print("gaps asked for by the gateway:", re.findall(r"seqs \[.*?\] missing", gw_text))
        print("edge:", last_stats(edge_log, "stats: read="))
        print("replay requests answered by the edge:",
              len(re.findall("replay request", edge_log.read_text(errors="replace"))))
        assert len(want) > 500
        assert set(got_e) == set(want), report("embedded", want, got_e)
        assert len(got_e) == len(set(want))  # one row per sample, none twice
        assert set(got_i) == set(want), report("influxdb", want, got_i)
        assert len(got_i) == len(set(want))
    finally:
        sup.stop_all()
        influx.stop()
