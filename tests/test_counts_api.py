"""Counts people enter, through the API, on the hand-made plant of the operations tests
(a real embedded store, a real operations database: SQLite and PostgreSQL in turn):
what an entry does to /oee, /trend, /losses, orders, alerts and federation aggregates,
answered from roll-ups or raw alike; changes and deletions with their audit; the
nonsense refused; the roles."""

from __future__ import annotations

import time

import pytest
import yaml
from fastapi.testclient import TestClient
from test_operations_api import (
    CNC,
    LINE1,
    LINE2,
    PRESS,
    REGISTRY,
    T0,
    TOKENS,
    S,
    auth,
    iso,
    window,
    write_store,
)

from shopfloor.server import oee
from shopfloor.server.app import create_app
from shopfloor.server.config import ServerConfig
from shopfloor.server.federation import enterprise
from shopfloor.server.operations.alerts import Evaluator
from shopfloor.server.rollup.maintainer import Maintainer
from shopfloor.server.rollup.source import QuantitySource

ICT = 0.5  # both machines' ideal cycle time (REGISTRY)


def app_config(tmp_path, database_url: str, **extra) -> ServerConfig:
    return ServerConfig.model_validate({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(tmp_path / "store.db")}},
        "oee": {"stale_after_s": 60, "small_stop_s": 0},
        "rollup": {"enabled": False, "maintain": False},
        "auth": {"anonymous_read": True, "tokens": [
            {"name": "Olga (line 1)", "token": TOKENS["op1"], "role": "operator",
             "lines": [LINE1]},
            {"name": "Eve", "token": TOKENS["eng"], "role": "engineer"},
            {"name": "Vic", "token": TOKENS["view"]}]},
        "operations": {"database": {"url": database_url}, "alerts": {"evaluate": False}},
        **extra})


def open_client(tmp_path, database_url: str, **extra) -> TestClient:
    write_store(tmp_path / "store.db")
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(REGISTRY))
    return TestClient(create_app(app_config(tmp_path, database_url, **extra), tmp_path))


@pytest.fixture
def client(tmp_path, database_url):
    with open_client(tmp_path, database_url) as c:
        yield c


def enter(client, who: str = "op1", **body):
    return client.post("/api/v1/counts", json={"machine": CNC, **body}, headers=auth(who))


def get(client, path: str, **params) -> dict:
    r = client.get(f"/api/v1/{path}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_entries_move_quality_and_performance_as_documented(client):
    before = get(client, "oee", **window(CNC))
    assert before["counts"] == {"total": 120.0, "good": 120.0, "reject": 0.0}
    r = enter(client, kind="reject", quantity=6, at=iso(T0 + 99_500_000_000),
              comment="scratches found at end-of-line inspection")
    assert r.status_code == 201, r.text
    assert (r.json()["kind"], r.json()["quantity"], r.json()["created_by"]) == (
        "reject", 6, "Olga (line 1)")
    assert enter(client, kind="total", quantity=10, at=iso(T0 + 80 * S)).status_code == 201
    after = get(client, "oee", **window(CNC))
    # a reject moves good parts to bad (total unchanged); parts entered raise the total
    # and the ideal time, so performance, at the machine's ideal cycle time
    assert after["counts"] == {"total": 130.0, "good": 124.0, "reject": 6.0}
    assert after["quality"] == pytest.approx(124 / 130)
    assert after["ideal_production_time_s"] == pytest.approx(130 * ICT)
    assert after["performance"] == pytest.approx(
        before["performance"] * 130 / 120)
    assert after["availability"] == before["availability"]
    assert after["times_s"] == before["times_s"]
    assert after["answered_from"]["count_entries"] == 2
    # the line rolls them up, the other line does not see them
    line1 = get(client, "oee", **window(LINE1))
    assert line1["counts"]["reject"] == 6 and line1["counts"]["total"] == 130
    assert get(client, "oee", **window(LINE2))["counts"]["reject"] == 0
    # a window that ends before the reject's instant counts only the parts entered
    assert get(client, "oee", **window(CNC, 0, 99))["counts"]["reject"] == 0
    # the trend's buckets and the losses read the same quantities
    buckets = get(client, "trend", **window(CNC), granularity="1h")["buckets"]
    assert sum(b["counts"]["reject"] for b in buckets) == 6
    assert sum(b["counts"]["total"] for b in buckets) == 130
    losses = get(client, "losses", **window(CNC))
    assert losses["losses_s"]["process_rejects"] == pytest.approx(6 * ICT)
    assert losses["losses_s"]["startup_rejects"] == 0
    assert losses["scrap_ratio"] == pytest.approx(6 / 130)
    listed = get(client, "counts", **window(LINE1))
    assert [(e["kind"], e["quantity"]) for e in listed["entries"]] == [("total", 10),
                                                                      ("reject", 6)]
    assert listed["sums"] == {"total": 10, "reject": 6}
    assert listed["entries"][1]["comment"] == "scratches found at end-of-line inspection"


def test_orders_against_plan_count_the_entries(client):
    r = client.post("/api/v1/orders", headers=auth("eng"), json={
        "order_no": "C-1", "line": LINE1, "product": "SHAFT", "planned_qty": 100,
        "planned_start": iso(T0), "planned_end": iso(T0 + 100 * S)})
    assert r.status_code == 201, r.text
    assert enter(client, kind="reject", quantity=20, at=iso(T0 + 99_500_000_000)
                 ).status_code == 201
    doc = get(client, "orders", **window(LINE1))
    order = doc["orders"][0]
    want = get(client, "oee", **window(LINE1))
    assert order["good"] == want["counts"]["good"] == 100
    assert order["quality"] == pytest.approx(want["quality"]) and order["progress"] == 1.0
    assert doc["by_product"]["SHAFT"]["good"] == 100


def test_changes_and_deletions_are_kept_with_who_when_and_the_old_value(client):
    r = enter(client, kind="reject", quantity=6, at=iso(T0 + 99_500_000_000))
    entry = r.json()["id"]
    r = client.patch(f"/api/v1/counts/{entry}", headers=auth("eng"),
                     json={"quantity": 8, "comment": "recounted"})
    assert r.status_code == 200, r.text
    assert (r.json()["quantity"], r.json()["comment"], r.json()["updated_by"]) == (
        8, "recounted", "Eve")
    assert get(client, "oee", **window(CNC))["counts"]["reject"] == 8
    assert client.patch(f"/api/v1/counts/{entry}", headers=auth("op1"),
                        json={"kind": "total"}).status_code == 200
    assert get(client, "oee", **window(CNC))["counts"] == {
        "total": 128.0, "good": 128.0, "reject": 0.0}
    assert client.delete(f"/api/v1/counts/{entry}", headers=auth("op1")).status_code == 204
    assert get(client, "oee", **window(CNC))["counts"]["total"] == 120
    assert get(client, "counts", **window(CNC))["entries"] == []
    changes = get(client, "counts/audit", **window(LINE1))["changes"]
    at = iso(T0 + 99_500_000_000).replace("+00:00", "Z")
    assert [(c["action"], c["who"], c["old"], c["new"]) for c in changes] == [
        ("delete", "Olga (line 1)",
         {"kind": "total", "quantity": 8, "at": at, "comment": "recounted"}, None),
        ("change", "Olga (line 1)",
         {"kind": "reject", "quantity": 8, "at": at, "comment": "recounted"},
         {"kind": "total", "quantity": 8, "at": at, "comment": "recounted"}),
        ("change", "Eve", {"kind": "reject", "quantity": 6, "at": at, "comment": None},
         {"kind": "reject", "quantity": 8, "at": at, "comment": "recounted"}),
        ("add", "Olga (line 1)", None,
         {"kind": "reject", "quantity": 6, "at": at, "comment": None})]
    assert {c["entry_id"] for c in changes} == {entry}
    # a deleted entry is gone for good
    assert client.patch(f"/api/v1/counts/{entry}", headers=auth("eng"),
                        json={"quantity": 1}).status_code == 404
    assert client.delete(f"/api/v1/counts/{entry}", headers=auth("eng")).status_code == 404


def test_nonsense_is_refused_with_a_clear_status(client):
    for bad in ({"quantity": 0}, {"quantity": -5}, {"quantity": 2.5}, {"kind": "good"},
                {"quantity": 10**7}, {"at": "yesterday"}, {"comment": "x" * 2001}):
        r = enter(client, **({"kind": "total", "quantity": 1} | bad))
        assert r.status_code == 422, (bad, r.text)
    future = enter(client, kind="total", quantity=1, at=iso(time.time_ns() + 3600 * S))
    assert future.status_code == 422 and "in the future" in future.json()["detail"]
    for at in ("0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z"):
        assert enter(client, kind="total", quantity=1, at=at).status_code == 422, at
    assert client.patch(f"/api/v1/counts/{2**40}", json={"quantity": 1},
                        headers=auth("eng")).status_code == 422
    assert enter(client, kind="total", quantity=1, machine=f"{LINE1}/nope").status_code == 404
    assert enter(client, kind="total", quantity=1, machine=LINE1).status_code == 422
    # rejects up to the parts of the entry's day (no calendar): counted and entered
    at = iso(T0 + 99_500_000_000)
    more = enter(client, kind="reject", quantity=121, at=at)
    assert more.status_code == 409 and "121 rejects but 120 parts" in more.json()["detail"]
    assert enter(client, kind="reject", quantity=100, at=at).status_code == 201
    assert enter(client, kind="reject", quantity=21, at=at).status_code == 409
    parts = enter(client, kind="total", quantity=30, at=iso(T0 + 50 * S)).json()["id"]
    assert enter(client, kind="reject", quantity=50, at=at).status_code == 201
    # nor by taking parts away: deleting or shrinking the entry the rejects need
    assert client.delete(f"/api/v1/counts/{parts}", headers=auth("op1")).status_code == 409
    assert client.patch(f"/api/v1/counts/{parts}", headers=auth("op1"),
                        json={"quantity": 29}).status_code == 409
    assert client.patch(f"/api/v1/counts/{parts}", headers=auth("op1"),
                        json={"kind": "reject"}).status_code == 409
    assert client.patch(f"/api/v1/counts/{parts}", headers=auth("op1"),
                        json={"quantity": 31}).status_code == 200
    assert client.patch(f"/api/v1/counts/{parts}", headers=auth("op1"),
                        json={"quantity": 0}).status_code == 422
    assert get(client, "oee", **window(CNC))["counts"] == {
        "total": 151.0, "good": 1.0, "reject": 150.0}


def test_roles_guard_every_count(client):
    body = {"machine": PRESS, "kind": "reject", "quantity": 1, "at": iso(T0 + 99 * S)}
    assert client.post("/api/v1/counts", json=body, headers=auth("op1")).status_code == 403
    assert client.post("/api/v1/counts", json=body, headers=auth("view")).status_code == 403
    assert client.post("/api/v1/counts", json=body).status_code == 401
    r = client.post("/api/v1/counts", json=body, headers=auth("eng"))
    assert r.status_code == 201, r.text
    press_entry = r.json()["id"]
    for call in (lambda h: client.patch(f"/api/v1/counts/{press_entry}", json={"quantity": 2},
                                        headers=h),
                 lambda h: client.delete(f"/api/v1/counts/{press_entry}", headers=h)):
        assert call(auth("op1")).status_code == 403
        assert call(auth("view")).status_code == 403
        assert call({}).status_code == 401
    # an operator changes any entry of its line, an engineer's too
    cnc_entry = enter(client, "eng", kind="total", quantity=3).json()["id"]
    assert client.patch(f"/api/v1/counts/{cnc_entry}", json={"quantity": 4},
                        headers=auth("op1")).status_code == 200
    assert get(client, "counts", **window(PRESS))["sums"] == {"total": 0, "reject": 1}


def test_the_reject_rate_alert_counts_the_entries(client):
    r = client.post("/api/v1/alert-rules", headers=auth("eng"), json={
        "name": "rejects > 4 %", "kind": "reject_rate", "scope": LINE1, "threshold": 0.04})
    assert r.status_code == 201, r.text
    state = client.app.state.shopfloor
    evaluator = Evaluator(state.operations.db, state.reader, None, state.registry,
                          state.config.oee)
    now = T0 + 100 * S
    assert evaluator.run_once(now) == (0, 0)
    entry = enter(client, kind="reject", quantity=6, at=iso(T0 + 99_500_000_000)).json()["id"]
    assert evaluator.run_once(now) == (1, 0)
    alert = get(client, "alerts", scope=LINE1)[0]
    assert alert["value"] == pytest.approx(6 / 120) and alert["status"] == "open"
    client.delete(f"/api/v1/counts/{entry}", headers=auth("op1"))
    assert evaluator.run_once(now) == (0, 1)


def test_oee_from_rollups_equals_raw_with_the_entries(tmp_path, database_url):
    with open_client(tmp_path, database_url,
                     rollup={"enabled": True, "maintain": False}) as client:
        state = client.app.state.shopfloor
        equipment = state.registry.equipment_under(state.registry.root)
        Maintainer(state.reader, state.reader, state.rollups.buckets, lambda: equipment,
                   state.rollups.definition, settle_s=0).round(now_ns=T0 + 3 * 3600 * S)
        assert enter(client, kind="reject", quantity=7, at=iso(T0 + 99 * S)).status_code == 201
        assert enter(client, kind="total", quantity=9, at=iso(T0 + 30 * S)).status_code == 201
        assert enter(client, "eng", kind="total", quantity=4, at=iso(T0 + 70 * S),
                     machine=PRESS).status_code == 201
        hour = T0 - T0 % (3600 * S)  # both lines, over whole hours (minutes are long gone)
        t0, t1 = hour - 3600 * S, hour + 2 * 3600 * S
        fast = get(client, "oee", scope=LINE1.rsplit("/", 1)[0], start=iso(t0), end=iso(t1))
        assert fast["answered_from"] == {"buckets": 2 * 3, "raw_spans": 0, "count_entries": 3}
        q = oee.MetricsQuery.of(state.config.oee, t0, t1)
        raw = oee.compute(QuantitySource(state.reader, None, state.operations.counts),
                          equipment, q)
        assert fast["counts"] == raw["counts"] == {"total": 233.0, "good": 226.0,
                                                   "reject": 7.0}
        for k in ("availability", "performance", "quality", "oee", "ideal_production_time_s"):
            assert fast[k] == pytest.approx(raw[k], rel=1e-12), k
        # and that is the raw computation without entries plus the entered counts
        bare = oee.totals_of(QuantitySource(state.reader), equipment, q)
        assert fast["ideal_production_time_s"] == pytest.approx(bare.ideal_s + 13 * ICT)


def test_federation_aggregates_include_the_entries(tmp_path, database_url):
    fed = {"cluster_url": "http://127.0.0.1:9", "enterprise": "acme", "token": "t" * 20,
           "queue": str(tmp_path / "outbox.db"), "interval_s": 3600}
    with open_client(tmp_path, database_url, federation=fed) as client:
        state = client.app.state.shopfloor
        day = get(client, "federation/aggregates", period="day",
                  start=iso(T0)[:10])["aggregates"][0]["oee"]
        assert enter(client, kind="reject", quantity=6, at=iso(T0 + 99 * S)).status_code == 201
        got = get(client, "federation/aggregates", period="day",
                  start=iso(T0)[:10])["aggregates"][0]["oee"]
        assert (got["total"], got["reject"]) == (day["total"], day["reject"] + 6)
        assert got["reject_ideal_s"] == pytest.approx(day["reject_ideal_s"] + 6 * ICT)
        # the uplink computes through the same source: counts entered today reach it
        now = time.time_ns()
        assert enter(client, kind="total", quantity=40, at=iso(now - 60 * S)).status_code == 201
        assert enter(client, kind="reject", quantity=4, at=iso(now - 60 * S)).status_code == 201
        pushed = state.uplink.compute(1)
        bare = enterprise.recent(state.config, state.registry, QuantitySource(state.reader), 1)
        more: dict[str, list[float]] = {"day": [0, 0], "month": [0, 0]}
        for a, b in zip(pushed, bare, strict=True):
            assert a.label == b.label
            more[a.period][0] += a.oee.total - b.oee.total
            more[a.period][1] += a.oee.reject - b.oee.reject
        assert more == {"day": [40, 4], "month": [40, 4]}
