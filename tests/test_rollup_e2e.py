"""Roll-ups end to end: the simulated plant -> edge -> Mosquitto -> gateway -> embedded
store, with the server maintaining its roll-ups while the plant runs and the broker gone
for 12 s mid-shift (the edge's outbox holds the samples, which arrive after the roll-ups
have settled that time: late data). Then OEE and losses answered from roll-up buckets
equal those of a server without roll-ups, and match the simulators' ground truth."""

from __future__ import annotations

import time

import httpx
import pytest
import yaml
from services import start_plant_stack

from shopfloor.simulators.truth import load_truth
from shopfloor.supervisor import Supervisor, free_port
from shopfloor.up import StackFiles, write_configs
from tests.test_e2e import MACHINES, SCENARIO, check_against_truth, iso, start_server, wait_until

pytestmark = pytest.mark.e2e
NS = 10**9
MINUTE = 60 * NS
OEE = {"small_stop_s": 4.0, "startup_s": 2.0}
ROLLUP = {"interval_s": 0.5, "settle_s": 1.0}  # margin 5 s: the broker's 12 s gap is late


def outbox_empty(path) -> bool:
    import sqlite3

    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM batches WHERE acked=0").fetchone()[0] == 0


@pytest.mark.timeout(300)
def test_rollups_with_a_late_backlog_match_raw_and_truth(tmp_path, mosquitto):
    files: StackFiles = write_configs(tmp_path / "stack", SCENARIO, mqtt_port=mosquitto.port,
                                      http_port=free_port())
    doc = yaml.safe_load(files.server.read_text())
    doc["oee"] = OEE
    doc["rollup"] = ROLLUP
    files.server.write_text(yaml.safe_dump(doc))
    raw_cfg = files.workdir / "server-raw.yaml"
    doc["rollup"] = {"enabled": False}
    doc["http"]["port"] = free_port()
    raw_cfg.write_text(yaml.safe_dump(doc))
    sup = Supervisor(tmp_path / "logs")
    try:
        url = start_server(sup, "server", files.server)  # maintains while the plant runs
        plant, _, _ = start_plant_stack(sup, files)
        time.sleep(20)
        mosquitto.proc.terminate()  # the broker goes away for 12 s mid-shift
        mosquitto.proc.wait(10)
        time.sleep(12)
        mosquitto.start()
        plant.wait(timeout=120)
        assert plant.returncode == 0
        wait_until(lambda: outbox_empty(files.workdir / "outbox.db"), 60, "the backlog")
        truth = load_truth(files.truth)
        s0, s1 = truth.shift_window()
        window = (s0 // MINUTE * MINUTE, -(-(s1 + 10 * NS) // MINUTE) * MINUTE)  # minutes

        def from_buckets() -> dict:
            return httpx.get(f"{url}/api/v1/oee", params={
                "scope": "demo-cluster", "start": iso(window[0]), "end": iso(window[1])},
                timeout=30).json()["answered_from"]

        # the maintainer settles past the window (minute buckets, no raw edge left)
        wait_until(lambda: from_buckets()["raw_spans"] == 0, 90, "roll-ups to settle")
        assert from_buckets()["buckets"] >= len(MACHINES)
        raw_url = start_server(sup, "server-raw", raw_cfg)
        groups = {m: [m] for m in MACHINES} | {"acme/plant1": MACHINES,
                                               "demo-cluster": MACHINES}
        for path in ("oee", "losses"):
            for scope in groups:
                params = {"scope": scope, "start": iso(window[0]), "end": iso(window[1])}
                fast = httpx.get(f"{url}/api/v1/{path}", params=params, timeout=30).json()
                slow = httpx.get(f"{raw_url}/api/v1/{path}", params=params, timeout=30).json()
                assert fast["answered_from"]["raw_spans"] == 0, scope
                assert slow["answered_from"]["buckets"] == 0, scope
                for key in ("times_s", "counts", "planned_busy_time_s", "availability",
                            "performance", "quality", "oee"):
                    assert fast[key] == pytest.approx(slow[key], rel=1e-9), (path, scope, key)
                if path == "losses":
                    assert fast["losses_s"] == pytest.approx(slow["losses_s"], rel=1e-9)
                    assert fast["failure_count"] == slow["failure_count"], scope
                    assert fast["small_stops"] == pytest.approx(slow["small_stops"]), scope
        print(f"\nfrom roll-ups: {from_buckets()}")
        for scope, ids in groups.items():
            check_against_truth(url, truth, scope, ids, window)
    finally:
        sup.stop_all()
