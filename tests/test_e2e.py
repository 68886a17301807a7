"""End to end on real services: simulated plant -> edge -> Mosquitto -> gateway ->
embedded store + InfluxDB 1.x -> OEE API, checked against the simulators' ground truth.

Every process is the real ``shopfloor`` command; everything talks over loopback.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from services import start_plant_stack

from shopfloor import contract
from shopfloor.simulators.truth import load_truth
from shopfloor.supervisor import Supervisor, free_port, shopfloor_cmd
from shopfloor.up import StackFiles, write_configs

pytestmark = pytest.mark.e2e

SHIFT_S = 60
SCENARIO = {
    "seed": 11,
    "enterprise": {"id": "acme", "name": "Acme Precision"},
    "site": {"id": "plant1", "name": "Plant 1"},
    "timeline": {"lead_in_s": 6, "duration_s": SHIFT_S, "lead_out_s": 3},
    "defaults": {
        "ideal_cycle_time_s": 0.5, "speed_factor": 1.15, "reject_rate": 0.06,
        "durations_s": {"PRODUCING": [4, 8], "IDLE": [1, 3], "DOWN": [1.5, 4],
                        "SETUP": [1, 3], "PLANNED_STOP": [1, 3]},
    },
    "areas": [
        {"id": "machining", "name": "Machining", "lines": [
            {"id": "line1", "name": "Line 1", "machines": [
                {"id": "cnc-01", "protocol": "opcua", "port": 1},
                {"id": "press-01", "protocol": "modbus", "port": 2,
                 "ideal_cycle_time_s": 0.4, "speed_factor": 1.3},
            ]}]},
        {"id": "assembly", "name": "Assembly", "lines": [
            {"id": "line2", "name": "Line 2", "machines": [
                {"id": "cnc-02", "protocol": "opcua", "port": 3, "speed_factor": 0.95},
                {"id": "press-02", "protocol": "modbus", "port": 4, "reject_rate": 0.15},
            ]}]},
    ],
}
MACHINES = [f"acme/plant1/{a['id']}/{ln['id']}/{m['id']}"
            for a in SCENARIO["areas"] for ln in a["lines"] for m in ln["machines"]]


class Witness:
    """Counts the samples published on the data topics, once per (agent, seq)."""

    def __init__(self, port: int):
        self.batches: dict[tuple[str, int], int] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-witness",
                                  clean_session=False)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(contract.subscription("data"), 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        doc = json.loads(msg.payload)
        with self.lock:
            self.batches[(doc["agent"], doc["seq"])] = len(doc["samples"])

    @property
    def samples(self) -> int:
        with self.lock:
            return sum(self.batches.values())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def embedded_count(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM samples").fetchone()[0]


def influx_count(influxdb) -> int:
    res = influxdb.query('SELECT count("quality") FROM "samples"')["results"][0]
    return res["series"][0]["values"][0][1] if "series" in res else 0


def wait_until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def start_server(sup: Supervisor, name: str, config: Path) -> str:
    port = yaml.safe_load(config.read_text())["http"]["port"]
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    sup.start(name, shopfloor_cmd("server", "--config", str(config)), healthy)
    return url


def check_against_truth(url: str, truth, scope: str, ids: list[str], window) -> dict:
    got = httpx.get(f"{url}/api/v1/oee", params={
        "scope": scope, "start": iso(window[0]), "end": iso(window[1])}, timeout=30).json()
    want = truth.oee(ids, *window)
    print(f"{scope:<40} " + "  ".join(
        f"{k[:4]} {got[k]:.4f}/{want[k]:.4f}" for k in ("availability", "performance",
                                                        "quality", "oee")))
    for key in ("availability", "performance", "quality", "oee"):
        assert got[key] == pytest.approx(want[key], abs=0.01), (scope, key, got, want)
    assert got["counts"]["total"] == want["counts"]["total"], (scope, got, want)
    assert got["counts"]["reject"] == want["counts"]["reject"], (scope, got, want)
    return got


@pytest.mark.timeout(300)
def test_plant_to_oee_matches_ground_truth(tmp_path, mosquitto, influxdb):
    influx_cfg = {"version": 1, "url": influxdb.url, "database": influxdb.database}
    files: StackFiles = write_configs(
        tmp_path / "stack", SCENARIO, mqtt_port=mosquitto.port, http_port=free_port(),
        influxdb=influx_cfg)
    influx_server_cfg = tmp_path / "stack" / "server-influx.yaml"
    doc = yaml.safe_load(files.server.read_text())
    doc["store"] = {"influxdb": influx_cfg}
    doc["http"]["port"] = free_port()
    influx_server_cfg.write_text(yaml.safe_dump(doc))

    witness = Witness(mosquitto.port)
    sup = Supervisor(tmp_path / "logs")
    try:
        plant, _, _ = start_plant_stack(sup, files)
        plant.wait(timeout=SHIFT_S + 60)
        assert plant.returncode == 0

        # Everything the edge published reaches both stores, once.
        wait_until(lambda: witness.samples > 0
                   and embedded_count(files.store) == witness.samples
                   and influx_count(influxdb) == witness.samples, 30,
                   "stores to hold every published sample")
        published = witness.samples
        time.sleep(1.5)  # nothing more arrives, nothing is stored twice
        assert embedded_count(files.store) == witness.samples == published
        assert influx_count(influxdb) == published
        assert published > 200
        print(f"\npublished {published} samples; embedded {embedded_count(files.store)}, "
              f"influxdb {influx_count(influxdb)}")

        truth = load_truth(files.truth)
        window = truth.shift_window()
        groups = {m: [m] for m in MACHINES}
        groups["acme/plant1/machining/line1"] = MACHINES[:2]
        groups["acme/plant1/assembly/line2"] = MACHINES[2:]
        groups["acme/plant1"] = MACHINES
        groups["demo-cluster"] = MACHINES
        for name, config in (("server-embedded", files.server),
                             ("server-influxdb", influx_server_cfg)):
            url = start_server(sup, name, config)
            print(f"{name}: scope, API/truth")
            for scope, ids in groups.items():
                got = check_against_truth(url, truth, scope, ids, window)
                assert got["times_s"]["OFFLINE"] < 0.5, (scope, got["times_s"])
    finally:
        witness.close()
        sup.stop_all()
