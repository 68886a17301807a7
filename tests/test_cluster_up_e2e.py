"""Issue 16's acceptance end to end: ``shopfloor up`` with a cluster file runs three
enterprise stacks (simulators -> edge -> Mosquitto -> gateway -> store -> enterprise
server), each federating to one cluster server; the cluster's figures of the month are
each enterprise's registry counts exactly and its OEE within 1 pp of the simulators'
ground truth, pooled and as the mean of enterprises. Run under
`flock /tmp/shopfloor-heavy.lock`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import yaml
from services import sigint_default

from shopfloor.simulators.truth import load_truth
from shopfloor.supervisor import free_port
from shopfloor.times import NS

pytestmark = pytest.mark.timeout(420)
SHIFT = {"lead_in_s": 2, "duration_s": 40, "lead_out_s": 2}
EVERY_HOUR = {"timezone": "UTC", "weekly": {d: [{"start": "00:00", "end": "00:00"}] for d in
                                            ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}


def plant(ent: str, seed: int, machines: list[dict]) -> dict:
    return {"seed": seed, "enterprise": {"id": ent}, "site": {"id": "s"}, "timeline": SHIFT,
            "areas": [{"id": "w", "lines": [{"id": "l", "machines": machines}]}]}


CLUSTER = {"cluster": {"id": "park", "name": "Test park"}, "enterprises": [
    {"scenario": plant("acme", 1, [{"id": "cnc", "protocol": "opcua", "port": 1},
                                   {"id": "press", "protocol": "modbus", "port": 2}]),
     "calendar": EVERY_HOUR,
     "extra_equipment": [{"workshop": "w", "line": "l", "id": "old", "digital": False,
                          "key_process": True}]},
    {"scenario": plant("bolt", 2, [{"id": "cnc", "protocol": "opcua", "port": 1,
                                    "reject_rate": 0.1, "durations_s": {"DOWN": [3, 6]}}]),
     "calendar": EVERY_HOUR,
     "extra_equipment": [{"workshop": "w", "line": "l", "id": "grinder",
                          "numerically_controlled": True, "key_process": True}]},
    {"scenario": plant("cast", 3, [{"id": "press", "protocol": "modbus", "port": 1,
                                    "speed_factor": 1.4}]),
     "calendar": EVERY_HOUR},
]}
# (equipment digitalization, networking, key-process NC) from the registries above
RATES = {"acme": (2 / 3, 2 / 3, 1 / 3), "bolt": (1.0, 0.5, 1.0), "cast": (1.0, 1.0, 0.0)}


def get(url: str, **params) -> dict:
    r = httpx.get(url, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def wait_until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except (httpx.HTTPError, OSError, ValueError):  # not up, or not written yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def not_at_a_month_end() -> None:
    """The run and its check lie in one month: wait out the last minutes of one."""
    now = datetime.now(UTC)
    first = (now.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0,
                                                             second=0, microsecond=0)
    if first - now < timedelta(minutes=8):
        time.sleep((first - now).total_seconds() + 1)


def test_three_enterprise_stacks_federate_their_true_figures(tmp_path):
    not_at_a_month_end()
    cfg = tmp_path / "park.yaml"
    cfg.write_text(yaml.safe_dump(CLUSTER))
    port, workdir = free_port(), tmp_path / "sf"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopfloor", "up", "--scenario", str(cfg), "--workdir",
         str(workdir), "--port", str(port), "--broker", "mosquitto", "--duration", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=sigint_default)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "shopfloor is up" in line or "rror" in line:
                break
        out = "".join(lines)
        assert "shopfloor is up: cluster report" in out, out
        for service in ("cluster", "acme.broker", "bolt.plant", "cast.server"):
            assert f"ready    {service}" in out, out
        curl = f"http://127.0.0.1:{port}"
        urls = {e: f"http://127.0.0.1:{port + 1 + i}" for i, e in enumerate(RATES)}
        truths = {}
        for ent in RATES:  # every plant's shift is over
            path = workdir / ent / "truth.jsonl"
            wait_until(lambda p=path: load_truth(p).run_window()[1] >=
                       load_truth(p).shift_window()[1], 150, f"{ent}'s shift to end")
            truths[ent] = load_truth(path)
        ended = max(t.run_window()[1] for t in truths.values())

        def delivered_after_the_end(url: str) -> bool:
            up = get(f"{url}/api/v1/federation")["uplink"]
            last = up["last_round"]
            return (last is not None and up["queue"]["pending"] == 0 and
                    datetime.fromisoformat(last).timestamp() * NS > ended + 5 * NS)
        for ent, url in urls.items():
            wait_until(lambda u=url: delivered_after_the_end(u), 90, f"{ent}'s round")

        month = datetime.now(UTC).strftime("%Y-%m")
        doc = get(f"{curl}/api/v1/cluster/history", start=month)["periods"][0]
        rows = {r["id"]: r for r in doc["enterprises"]}
        assert sorted(rows) == sorted(RATES)
        t0 = int(datetime.fromisoformat(f"{month}-01T00:00:00+00:00").timestamp()) * NS
        now = time.time_ns()
        sums = {"ideal": 0.0, "pbt": 0.0, "good": 0, "total": 0}
        oees = []
        for ent, (dig, net, nc) in RATES.items():
            row = rows[ent]
            assert row["equipment_digitalization_rate"] == pytest.approx(dig, abs=1e-12)
            assert row["networking_rate"] == pytest.approx(net, abs=1e-12)
            assert row["key_process_nc_rate"] == pytest.approx(nc, abs=1e-12)
            truth = truths[ent]
            want = truth.oee(list(truth.machines), t0, now)
            assert row["oee"] == pytest.approx(want["oee"], abs=0.01), ent
            oees.append(want["oee"])
            sums["ideal"] += want["ideal_production_time_s"]
            sums["pbt"] += want["planned_busy_time_s"]
            sums["good"] += want["counts"]["good"]
            sums["total"] += want["counts"]["total"]
        pooled = sums["ideal"] / sums["pbt"] * sums["good"] / sums["total"]  # A x P x Q
        assert doc["pooled"]["oee"] == pytest.approx(pooled, abs=0.01)
        assert doc["mean_of_enterprises"]["oee"] == pytest.approx(sum(oees) / 3, abs=0.01)
        assert doc["mean_of_enterprises"]["equipment_digitalization_rate"] == pytest.approx(
            sum(r[0] for r in RATES.values()) / 3, abs=1e-12)
        assert len({round(rows[e]["oee"], 3) for e in RATES}) == 3  # they differ
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, rest
    assert "shopfloor stopped." in rest
