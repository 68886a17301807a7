"""Federation with real processes on loopback (issue 16): three enterprise servers, each
on its own embedded store, push to one cluster server (real uvicorn). The cluster's
figures equal each enterprise's own (digitalization exact, OEE from the same sums), pooled
and mean; the cluster is stopped for 60 s while new data arrives at one enterprise, and
after it starts again that enterprise's new figures arrive, none twice; a wrong
credential is refused and logged without it; the cluster's database and log hold no
sample. Run under `flock /tmp/shopfloor-heavy.lock`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from federation_data import DAY, S, fill, machines, registry
from services import free_port, stop, wait_for_port

from shopfloor.contract import DevicePath, Sample
from shopfloor.server.auth import token_hash
from shopfloor.server.federation import periods
from shopfloor.storage.sqlite import SqliteStore
from shopfloor.times import datetime_ns

ENTERPRISES = ("acme", "bolt", "cast")
TOKENS = {e: f"{e}-federation-token-0123456789" for e in ENTERPRISES}
pytestmark = pytest.mark.timeout(300)


def wait_until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def start(argv: list[str], log: Path, port: int) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen([sys.executable, "-m", "shopfloor", "--log-level", "info", *argv],
                            stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wait_for_port(port, 60, proc)
    return proc


def get(url: str, **params) -> dict:
    r = httpx.get(url, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def write_cluster(tmp: Path, port: int) -> Path:
    cfg = tmp / "cluster" / "cluster.yaml"
    cfg.parent.mkdir()
    cfg.write_text(yaml.safe_dump({
        "name": "park", "database": "cluster.db", "http": {"port": port},
        "enterprises": [{"id": e, "sha256": token_hash(TOKENS[e])} for e in ENTERPRISES]}))
    return cfg


def write_enterprise(tmp: Path, ent: str, port: int, cluster_port: int, day0: int) -> Path:
    d = tmp / ent
    d.mkdir()
    (d / "registry.yaml").write_text(yaml.safe_dump(registry((ent,))))
    with SqliteStore(d / "store.db") as store:  # the two days before the outage day, by the minute
        fill(store, day0, 2, machines((ent,)), down_share={"acme": 0.4, "bolt": 0.2,
                                                           "cast": 0.1}[ent])
    cfg = d / "server.yaml"
    cfg.write_text(yaml.safe_dump({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(d / "store.db")}},
        "http": {"port": port}, "oee": {"stale_after_s": 3600},
        "rollup": {"interval_s": 2},
        "federation": {"cluster_url": f"http://127.0.0.1:{cluster_port}", "enterprise": ent,
                       "token": TOKENS[ent], "interval_s": 1, "backfill_days": 5}}))
    return cfg


def settled(url: str) -> bool:
    up = get(f"{url}/api/v1/federation")["uplink"]
    return up["rounds"] >= 1 and up["queue"]["pending"] == 0 and up["queue"]["delivered"] > 0


def oee_of(url: str, ent: str, t0: int, t1: int) -> dict:
    iso = lambda ns: datetime.fromtimestamp(ns / 1e9, UTC).isoformat()  # noqa: E731
    return get(f"{url}/api/v1/oee", scope=ent, start=iso(t0), end=iso(t1))


def check_month(curl: str, urls: dict[str, str], month: periods.Period) -> None:
    """The cluster's figures of ``month`` are each enterprise's own (digitalization
    exact, OEE from the same sums), pooled and mean."""
    doc = get(f"{curl}/api/v1/cluster/history", start=month.label)["periods"][0]
    rows = {r["id"]: r for r in doc["enterprises"]}
    assert sorted(rows) == list(ENTERPRISES)
    t0, t1 = month.bounds(periods.ZoneInfo("UTC"))
    live = t1 > time.time_ns()
    sums = {"apt": 0.0, "pbt": 0.0, "ideal": 0.0, "good": 0.0, "total": 0.0}
    for ent, url in urls.items():
        if live:  # the month's counts are those of now
            dig = get(f"{url}/api/v1/digitalization", scope=ent)["pooled"]
            for rate, v in dig.items():
                assert rows[ent][rate] == v, (ent, rate, month.label)
        own = oee_of(url, ent, t0, min(t1, time.time_ns()))
        for k in ("oee", "availability", "performance", "quality"):
            assert rows[ent][k] == pytest.approx(own[k], rel=1e-9), (ent, k, month.label)
        sums["apt"] += own["actual_production_time_s"]
        sums["pbt"] += own["planned_busy_time_s"]
        sums["ideal"] += own["ideal_production_time_s"]
        sums["good"] += own["counts"]["good"]
        sums["total"] += own["counts"]["total"]
    assert sums["total"] > 0 or live
    if sums["total"] > 0:
        pooled = (sums["apt"] / sums["pbt"]) * (sums["ideal"] / sums["apt"]) * (
            sums["good"] / sums["total"])
        assert doc["pooled"]["oee"] == pytest.approx(pooled, rel=1e-9)
        defined = [r["oee"] for r in rows.values() if r["oee"] is not None]
        assert doc["mean_of_enterprises"]["oee"] == pytest.approx(
            sum(defined) / len(defined), rel=1e-12)


def test_three_enterprises_federate_through_an_outage(tmp_path):
    now = time.time_ns()
    # the day whose morning is written during the outage is yesterday, a finished day, at
    # any hour: on today, in the first hour after midnight UTC, the last sample would be
    # younger than stale_after_s (1 h) and the figures would move while being compared
    outage_day = datetime_ns(datetime.fromtimestamp(now / 1e9, UTC).replace(
        hour=0, minute=0, second=0, microsecond=0)) - DAY
    # the months of the data and this month (live), which may be the same
    months = sorted({periods.month_of(datetime.fromtimestamp(t / 1e9, UTC).date())
                     for t in (outage_day - DAY, now)}, key=lambda p: p.label)
    cport = free_port()
    ccfg = write_cluster(tmp_path, cport)
    curl = f"http://127.0.0.1:{cport}"
    procs: list[subprocess.Popen] = []
    try:
        cluster = start(["cluster", "--config", str(ccfg)], tmp_path / "cluster.log", cport)
        urls = {}
        for ent in ENTERPRISES:
            port = free_port()
            cfg = write_enterprise(tmp_path, ent, port, cport, outage_day - 2 * DAY)
            procs.append(start(["server", "--config", str(cfg)], tmp_path / f"{ent}.log",
                               port))
            urls[ent] = f"http://127.0.0.1:{port}"
        for ent, url in urls.items():
            wait_until(lambda u=url: settled(u), 90, f"{ent}'s aggregates delivered")

        # the cluster's figures are each enterprise's own, for each month
        for month in months:
            check_month(curl, urls, month)
        rows = {r["id"]: r for r in get(f"{curl}/api/v1/cluster/history",
                                        start=months[0].label)["periods"][0]["enterprises"]}
        # acme's legacy machine: 2 of 3 digital
        assert rows["acme"]["equipment_digitalization_rate"] == pytest.approx(2 / 3)
        assert rows["acme"]["oee"] != rows["cast"]["oee"]

        # the uplink is cut for 60 s: the cluster stops, acme's machines produce this morning
        stop(cluster)
        cut = time.monotonic()
        wait_until(lambda: "unreachable" in (
            get(f"{urls['acme']}/api/v1/federation")["uplink"]["last_error"] or ""),
            30, "acme sees the cluster gone")
        dev = DevicePath("acme", "p1", "w", "l1", "cnc-01")
        with SqliteStore(tmp_path / "acme" / "store.db") as store:
            store.write([(dev, Sample("state", outage_day + 60 * S, "PRODUCING")),
                         (dev, Sample("part_count", outage_day + 60 * S, 0)),
                         (dev, Sample("part_count", outage_day + 600 * S, 250))])
        wait_until(lambda: get(f"{urls['acme']}/api/v1/federation")["uplink"]["queue"][
            "pending"] > 0, 30, "acme queues its new figures")
        time.sleep(max(0.0, cut + 60 - time.monotonic()))  # rounds go on meanwhile
        cluster = start(["cluster", "--config", str(ccfg)], tmp_path / "cluster.log", cport)
        wait_until(lambda: settled(urls["acme"]), 60, "acme's queue delivered after the outage")

        today_label = datetime.fromtimestamp(outage_day / 1e9, UTC).date().isoformat()
        db = sqlite3.connect(tmp_path / "cluster" / "cluster.db")
        held = db.execute("SELECT body FROM aggregates WHERE enterprise='acme' AND "
                          "period='day' AND label=?", (today_label,)).fetchall()
        assert len(held) == 1
        own = get(f"{urls['acme']}/api/v1/federation/aggregates", period="day",
                  start=today_label)["aggregates"][0]
        there = json.loads(held[0][0])["oee"]
        for doc in (there, own["oee"]):  # OFFLINE time may grow (staleness is wall time)
            doc["state_ns"].pop("OFFLINE", None)
        assert there == own["oee"] and own["oee"]["total"] >= 250  # this morning's parts
        new = db.execute("SELECT enterprise, period, label, COUNT(*) FROM receipts WHERE "
                         "outcome='new' GROUP BY 1, 2, 3 HAVING COUNT(*) > 1").fetchall()
        assert new == []  # every period arrived new once, later revisions replaced it
        again = db.execute("SELECT enterprise, period, label, revision, COUNT(*) FROM receipts "
                           "WHERE outcome IN ('new', 'replaced') GROUP BY 1, 2, 3, 4 "
                           "HAVING COUNT(*) > 1").fetchall()
        assert again == []  # no revision stored twice
        for month in months:  # acme's figures are its own again (not doubled)
            check_month(curl, urls, month)

        # a wrong or missing credential is refused and logged without it
        body = json.loads(held[0][0])
        url = f"{curl}/api/v1/federation/aggregates"
        wrong = "guessed-token-0123456789"
        assert httpx.post(url, json=body, headers={
            "Authorization": f"Bearer {wrong}"}).status_code == 401
        assert httpx.post(url, json=body).status_code == 401
        assert httpx.post(url, json=body, headers={
            "Authorization": f"Bearer {TOKENS['bolt']}"}).status_code == 403
    finally:
        for p in [*procs, cluster]:
            stop(p)
    log = (tmp_path / "cluster.log").read_text()
    assert log.count("refused a push") == 3
    for secret in (wrong, *TOKENS.values()):
        assert secret not in log
    for ent in ENTERPRISES:
        assert TOKENS[ent] not in (tmp_path / f"{ent}.log").read_text()
    # the cluster holds aggregates only: no sample table, no sample field
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"aggregates", "receipts"}
    for (b,) in db.execute("SELECT body FROM aggregates"):
        assert "part_count" not in b and '"ts"' not in b and "cnc-01" not in b
    assert "part_count" not in log and "cnc-01" not in log
