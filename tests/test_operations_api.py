"""Stops, reasons, Pareto, audit, plans, targets, roles and alerts through the API, on a
real embedded store holding hand-made samples and a real operations database: every
test runs on SQLite and on PostgreSQL (``database_url``)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from fastapi.testclient import TestClient

from shopfloor.contract import DevicePath, Sample
from shopfloor.server.app import create_app
from shopfloor.server.auth import token_hash
from shopfloor.server.config import ServerConfig
from shopfloor.server.operations.alerts import Evaluator
from shopfloor.server.operations.config import AlertsConfig
from shopfloor.server.operations.delivery import Delivery
from shopfloor.server.operations.schema import AlertEvent
from shopfloor.storage.sqlite import SqliteStore

S = 1_000_000_000
T0 = 1_763_800_000 * S
LINE1, LINE2 = "acme/plant1/machining/line1", "acme/plant1/machining/line2"
CNC, PRESS = f"{LINE1}/cnc-01", f"{LINE2}/press-01"
TOKENS = {"op1": "operator-line1-token", "eng": "engineer-token-0001",
          "view": "viewer-token-000001", "old-admin": "admin-scope-token-01"}
REGISTRY = {"cluster": {"id": "demo-cluster"}, "enterprises": [{"id": "acme", "sites": [{
    "id": "plant1", "workshops": [{"id": "machining", "lines": [
        {"id": "line1", "equipment": [{"id": "cnc-01", "ideal_cycle_time_s": 0.5}]},
        {"id": "line2", "equipment": [{"id": "press-01", "ideal_cycle_time_s": 0.5}]},
    ]}]}]}]}


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / S, UTC).isoformat()


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def write_store(path) -> None:
    cnc = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")
    press = DevicePath("acme", "plant1", "machining", "line2", "press-01")
    rows = [(cnc, Sample("state", T0 + t * S, v)) for t, v in [
        (0, "PRODUCING"), (10, "DOWN"), (20, "PRODUCING"), (30, "IDLE"), (35, "PRODUCING"),
        (50, "SETUP"), (60, "PRODUCING")]]
    rows += [(cnc, Sample("stop_reason", T0 + t * S, v)) for t, v in [
        (0, "NONE"), (10, "SPINDLE"), (20, "NONE"), (50, "PRODUCT_CHANGE"), (60, "NONE")]]
    rows += [(cnc, Sample("part_count", T0 + t * S, v)) for t, v in [(0, 0), (99, 120)]]
    rows += [(press, Sample("state", T0 + t * S, v)) for t, v in [
        (0, "PRODUCING"), (40, "DOWN"), (60, "PRODUCING")]]
    rows += [(press, Sample("part_count", T0 + t * S, v)) for t, v in [(0, 0), (99, 100)]]
    store = SqliteStore(path)
    store.write(rows)
    store.close()


def config(tmp_path, database_url: str, **alerts) -> ServerConfig:
    return ServerConfig.model_validate({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(tmp_path / "store.db")}},
        "oee": {"stale_after_s": 60, "small_stop_s": 0},
        "rollup": {"enabled": False, "maintain": False},
        "auth": {"anonymous_read": True, "tokens": [
            {"name": "Olga (line 1)", "sha256": token_hash(TOKENS["op1"]), "role": "operator",
             "lines": [LINE1]},  # a hashed token carries its role as a plain one does
            {"name": "Eve", "token": TOKENS["eng"], "role": "engineer"},
            {"name": "Vic", "token": TOKENS["view"]},
            {"name": "ops", "token": TOKENS["old-admin"], "scopes": ["admin"]}]},
        "operations": {"database": {"url": database_url},
                       "alerts": {"evaluate": False, **alerts}}})


@pytest.fixture
def client(tmp_path, database_url):
    write_store(tmp_path / "store.db")
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(REGISTRY))
    with TestClient(create_app(config(tmp_path, database_url), tmp_path)) as c:
        yield c


def window(scope: str, a: float = 0, b: float = 100) -> dict[str, str]:
    return {"scope": scope, "start": iso(T0 + round(a * S)), "end": iso(T0 + round(b * S))}


def stops(client, scope=LINE1) -> list[dict]:
    r = client.get("/api/v1/stops", params=window(scope))
    assert r.status_code == 200, r.text
    return r.json()["stops"]


def test_stops_carry_the_machines_reasons_and_add_up_to_the_oee_stop_time(client):
    got = stops(client)
    assert [(s["state"], s["machine_reason"], s["source"], s["duration_s"]) for s in got] == [
        ("DOWN", "SPINDLE", "machine", 10.0), ("IDLE", None, None, 5.0),
        ("SETUP", "PRODUCT_CHANGE", "machine", 10.0)]
    assert got[0]["stop_start"] == str(T0 + 10 * S)
    p = client.get("/api/v1/pareto", params=window(LINE1)).json()
    assert [(r["reason"], r["seconds"], r["loss"], r["planned"]) for r in p["reasons"]] == [
        ("PRODUCT_CHANGE", 10.0, "setups", True), ("SPINDLE", 10.0, "failures", False)]
    assert p["unclassified"] == {"seconds": 5.0, "count": 1}
    times = client.get("/api/v1/oee", params=window(LINE1)).json()["times_s"]
    assert p["stop_s"] == times["IDLE"] + times["DOWN"] + times["SETUP"]
    # a window inside a stop finds it whole, its time clipped to the window
    inner = client.get("/api/v1/pareto", params=window(LINE1, 15, 25)).json()
    assert [(r["reason"], r["seconds"]) for r in inner["reasons"]] == [("SPINDLE", 5.0)]
    assert client.get("/api/v1/stops", params=window(LINE1, 15, 25)).json()[
        "stops"][0]["stop_start"] == str(T0 + 10 * S)


def test_an_operator_classifies_and_the_pareto_and_audit_follow(client):
    idle = stops(client)[1]
    ref = {"machine": CNC, "stop_start": idle["stop_start"]}
    r = client.post("/api/v1/stops/reason", json={**ref, "reason": "STARVED"},
                    headers=auth("op1"))
    assert r.status_code == 200, r.text
    assert (r.json()["reason"], r.json()["source"]) == ("STARVED", "person")
    # a person overrides the machine's reason too
    down = stops(client)[0]
    assert client.post("/api/v1/stops/reason", headers=auth("op1"), json={
        "machine": CNC, "stop_start": down["stop_start"], "reason": "TOOLING"}).status_code == 200
    client.post("/api/v1/stops/reason", json={**ref, "reason": "BLOCKED"}, headers=auth("op1"))
    client.post("/api/v1/stops/comment", json={**ref, "comment": "conveyor jam"},
                headers=auth("op1"))
    p = client.get("/api/v1/pareto", params=window(LINE1)).json()
    assert {r["reason"]: r["seconds"] for r in p["reasons"]} == {
        "PRODUCT_CHANGE": 10.0, "TOOLING": 10.0, "BLOCKED": 5.0}
    assert p["unclassified"]["seconds"] == 0
    assert p["classified_share"] == 1.0
    changes = client.get("/api/v1/stops/audit", params=window(LINE1)).json()["changes"]
    assert [(c["action"], c["old"], c["new"], c["who"]) for c in changes] == [
        ("comment", None, "conveyor jam", "Olga (line 1)"),
        ("reason", "STARVED", "BLOCKED", "Olga (line 1)"),
        ("reason", None, "TOOLING", "Olga (line 1)"),
        ("reason", None, "STARVED", "Olga (line 1)")]
    assert stops(client)[1]["comment"] == "conveyor jam"
    # an unknown reason, a stop that is not there
    assert client.post("/api/v1/stops/reason", json={**ref, "reason": "NOPE"},
                       headers=auth("op1")).status_code == 409
    assert client.post("/api/v1/stops/reason", headers=auth("op1"), json={
        "machine": CNC, "stop_start": str(T0 + 11 * S), "reason": "BLOCKED"}).status_code == 409


def test_a_split_stop_has_two_reasons(client):
    down = stops(client)[0]
    r = client.post("/api/v1/stops/split", headers=auth("op1"), json={
        "machine": CNC, "stop_start": down["stop_start"], "at": iso(T0 + 14 * S)})
    assert r.status_code == 200, r.text
    assert [(s["duration_s"], s["reason"]) for s in r.json()] == [(4.0, "SPINDLE"),
                                                                  (6.0, "SPINDLE")]
    second = r.json()[1]
    client.post("/api/v1/stops/reason", headers=auth("op1"), json={
        "machine": CNC, "stop_start": down["stop_start"],
        "segment_start": second["segment_start"], "reason": "ELECTRICAL"})
    p = client.get("/api/v1/pareto", params=window(LINE1)).json()
    assert {r["reason"]: r["seconds"] for r in p["reasons"]} == {
        "PRODUCT_CHANGE": 10.0, "SPINDLE": 4.0, "ELECTRICAL": 6.0}
    assert client.post("/api/v1/stops/split", headers=auth("op1"), json={
        "machine": CNC, "stop_start": down["stop_start"], "at": iso(T0 + 25 * S)}
    ).status_code == 409  # outside the stop


def test_roles_guard_every_write(client):
    press_stop = stops(client, LINE2)[0]
    ref = {"machine": PRESS, "stop_start": press_stop["stop_start"], "reason": "SPINDLE"}
    assert client.post("/api/v1/stops/reason", json=ref, headers=auth("op1")).status_code == 403
    assert client.post("/api/v1/stops/reason", json=ref).status_code == 401
    assert client.post("/api/v1/stops/reason", json=ref, headers=auth("view")).status_code == 403
    assert client.post("/api/v1/stops/reason", json=ref, headers={
        "Authorization": "Bearer not-a-token-at-all"}).status_code == 401
    assert client.post("/api/v1/stops/reason", json=ref, headers=auth("eng")).status_code == 200
    order = {"order_no": "A-1", "line": LINE1, "product": "SHAFT", "planned_qty": 100,
             "planned_start": iso(T0), "planned_end": iso(T0 + 100 * S)}
    assert client.post("/api/v1/orders", json=order, headers=auth("op1")).status_code == 403
    target = {"scope": LINE1, "oee": 0.8}
    assert client.put("/api/v1/targets", json=target, headers=auth("op1")).status_code == 403
    rule = {"name": "down", "kind": "state", "scope": LINE1, "for_s": 10}
    assert client.post("/api/v1/alert-rules", json=rule, headers=auth("op1")).status_code == 403
    reason = {"enterprise": "acme", "code": "X", "name_en": "X", "loss": "failures"}
    assert client.put("/api/v1/reasons", json=reason, headers=auth("op1")).status_code == 403
    assert client.put("/api/v1/reasons", json=reason, headers=auth("eng")).status_code == 200
    assert client.get("/api/v1/whoami", headers=auth("op1")).json() == {
        "name": "Olga (line 1)", "role": "operator", "lines": [LINE1]}
    # tokens from before roles keep their meaning: the admin scope is an admin
    assert client.get("/api/v1/whoami", headers=auth("old-admin")).json()["role"] == "admin"
    assert client.get("/api/v1/whoami", headers=auth("view")).json()["role"] == "viewer"
    assert client.get("/api/v1/whoami").json()["name"] == "anonymous"
    assert client.post("/api/v1/orders", json={**order, "order_no": "A-9"},
                       headers=auth("old-admin")).status_code == 201


def test_orders_against_plan_and_oee_by_order_and_product(client):
    for no, product, a, b, qty in (("A-1", "SHAFT", 0, 50, 80), ("A-2", "FLANGE", 50, 100, 50)):
        r = client.post("/api/v1/orders", headers=auth("eng"), json={
            "order_no": no, "line": LINE1, "product": product, "planned_qty": qty,
            "planned_start": iso(T0 + a * S), "planned_end": iso(T0 + b * S)})
        assert r.status_code == 201, r.text
    assert client.put("/api/v1/targets", json={"scope": LINE1, "oee": 0.85},
                      headers=auth("eng")).status_code == 200
    doc = client.get("/api/v1/orders", params=window(LINE1)).json()
    assert doc["target_oee"] == 0.85
    for o, (a, b) in zip(doc["orders"], ((0, 50), (50, 100)), strict=True):
        want = client.get("/api/v1/oee", params=window(LINE1, a, b)).json()
        assert o["oee"] == pytest.approx(want["oee"])
        assert o["good"] == want["counts"]["good"]
        assert o["status"] == "done" and o["plan_to_date"] == o["planned_qty"]
    assert doc["by_product"]["SHAFT"]["oee"] == pytest.approx(doc["orders"][0]["oee"])
    assert doc["good"] == 120
    assert client.post("/api/v1/orders", headers=auth("eng"), json={
        "order_no": "A-1", "line": LINE1, "product": "X", "planned_qty": 1,
        "planned_start": iso(T0), "planned_end": iso(T0 + S)}).status_code == 409


class Receiver:
    """A webhook on loopback that keeps what it is sent."""

    def __init__(self):
        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_alerts_open_once_resolve_and_are_delivered_once(client, tmp_path):
    r = client.post("/api/v1/alert-rules", headers=auth("eng"), json={
        "name": "machine down", "kind": "state", "scope": LINE2, "for_s": 10})
    assert r.status_code == 201, r.text
    state = client.app.state.shopfloor
    ops = state.operations
    # two evaluators on the same database (two servers): each alert once
    evals = [Evaluator(ops.db, state.reader, None, state.registry, state.config.oee)
             for _ in range(2)]
    receiver = Receiver()
    cfg = AlertsConfig(webhooks=[receiver.url], name="a")
    deliveries = [Delivery(ops.db, cfg), Delivery(ops.db, cfg.model_copy(update={"name": "b"}))]
    try:
        for t, want_open in ((45, 0), (52, 1), (55, 0), (59, 0)):
            assert sum(e.run_once(T0 + t * S)[0] for e in evals) == want_open, t
        assert [a["status"] for a in client.get("/api/v1/alerts").json()] == ["open"]
        for d in deliveries:
            d.send_pending(T0 + 59 * S)
        assert sum(e.run_once(T0 + 61 * S)[1] for e in evals) == 1
        for d in deliveries:
            d.send_pending(T0 + 62 * S)
            d.send_pending(T0 + 63 * S)
    finally:
        for d in deliveries:
            d.close()
        receiver.close()
    assert [(m["event"], m["alert"]["asset"]) for m in receiver.got] == [
        ("open", PRESS), ("resolve", PRESS)]
    assert receiver.got[0]["alert"]["value"] == pytest.approx(12)
    doc = client.get("/api/v1/alerts", params={"scope": LINE2}).json()
    assert [(a["status"], a["rule"], a["asset"]) for a in doc] == [
        ("resolved", "machine down", PRESS)]
    with ops.db.session() as s:
        assert all(e.webhook_done and e.mqtt_done for e in s.query(AlertEvent))
    assert client.get("/api/v1/alerts", params={"scope": LINE1}).json() == []
