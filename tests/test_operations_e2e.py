"""Operations end to end on one real stack: simulated plant (PLC reason codes on line 1,
none on line 2, a 20 s DOWN on press-02) -> edge -> Mosquitto -> gateway -> embedded
store -> three servers: one on its own SQLite operations database, two sharing one
PostgreSQL database (as several servers in production).

Checked against the simulators' ground truth: machine-given reasons reach the Pareto
stop by stop; an alert for the 20 s stop (threshold 10 s) opens, is delivered once per
database to a webhook on loopback and (from the PostgreSQL pair) once over MQTT, and
resolves after every server was stopped and started again; OEE by order and product
and parts against plan; and in Chromium an operator classifies two stops of line 2, and
the line view shows its order against plan; then enters counts (rejects found at
inspection, parts made) and the shift's figures are the ground truth with them applied.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from playwright.sync_api import sync_playwright
from services import start_plant_stack

from shopfloor import contract
from shopfloor.contract import State
from shopfloor.simulators.machine import MachineModel
from shopfloor.simulators.scenario import Scenario
from shopfloor.simulators.truth import load_truth
from shopfloor.supervisor import Supervisor, free_port, shopfloor_cmd
from shopfloor.up import write_configs

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
S = 1_000_000_000
REASONS = {"DOWN": [{"code": 11, "reason": "SPINDLE"}, {"code": 12, "reason": "TOOLING"}],
           "IDLE": [{"code": 21, "reason": "STARVED"}, {"code": 22, "reason": "BLOCKED"}],
           "SETUP": [{"code": 31, "reason": "PRODUCT_CHANGE"}]}
SCENARIO = {
    "seed": 5,
    "enterprise": {"id": "acme", "name": "Acme"},
    "site": {"id": "plant1", "name": "Plant 1"},
    "timeline": {"lead_in_s": 4, "duration_s": 60, "lead_out_s": 3},
    "defaults": {"ideal_cycle_time_s": 0.5, "speed_factor": 1.1, "reject_rate": 0.05,
                 "durations_s": {"PRODUCING": [3, 6], "IDLE": [1, 3], "DOWN": [1.5, 4],
                                 "SETUP": [1, 3], "PLANNED_STOP": [1, 2]}},
    "areas": [
        {"id": "machining", "lines": [{"id": "line1", "machines": [
            {"id": "cnc-01", "protocol": "opcua", "port": 1, "stop_reasons": REASONS},
            {"id": "press-01", "protocol": "modbus", "port": 2, "stop_reasons": REASONS,
             "ideal_cycle_time_s": 0.4}]}]},
        {"id": "assembly", "lines": [{"id": "line2", "machines": [
            {"id": "cnc-02", "protocol": "opcua", "port": 3},
            {"id": "press-02", "protocol": "modbus", "port": 4,
             "durations_s": {"DOWN": [20, 20]}}]}]},
    ],
}
LINE1, LINE2 = "acme/plant1/machining/line1", "acme/plant1/assembly/line2"
LINE1_MACHINES = [f"{LINE1}/cnc-01", f"{LINE1}/press-01"]
PRESS2 = f"{LINE2}/press-02"
TOKENS = {"eng": "engineer-e2e-token", "op2": "operator-line2-token"}
ENG = {"Authorization": f"Bearer {TOKENS['eng']}"}


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / S, UTC).isoformat()


def wait_until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Webhook:
    """A webhook receiver on loopback: keeps each POSTed alert event."""

    def __init__(self):
        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[tuple[str, str]]:
        return [(m["event"], m["alert"]["asset"]) for m in self.got]


class AlertListener:
    """Everything published under shopfloor/v1/_alerts/#."""

    def __init__(self, port: int):
        self.got: list[tuple[str, dict]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-alerts")
        self.client.on_connect = lambda c, *_: c.subscribe(f"{contract.ALERT_TOPIC_ROOT}/#", 1)
        self.client.on_message = lambda _c, _u, m: self.got.append(
            (m.topic, json.loads(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def events(self) -> list[tuple[str, str]]:
        return [(doc["event"], topic) for topic, doc in self.got]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Server:
    name: str
    config: Path
    url: str

    def api(self, path: str, **params):
        r = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        assert r.status_code == 200, (path, r.text)
        return r.json()

    def start(self, sup: Supervisor) -> None:
        def healthy() -> bool:
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        sup.start(self.name, shopfloor_cmd("server", "--config", str(self.config)), healthy)


def server_config(base: dict, workdir: Path, name: str, *, database: str | None,
                  webhook: str, mqtt_port: int | None, maintain: bool) -> Server:
    doc = json.loads(json.dumps(base))
    port = free_port()
    doc["http"]["port"] = port
    doc["rollup"] = {"name": name, "maintain": maintain}
    doc["auth"] = {"anonymous_read": True, "tokens": [
        {"name": "Erin (engineer)", "token": TOKENS["eng"], "role": "engineer"},
        {"name": "Omar (line 2)", "token": TOKENS["op2"], "role": "operator",
         "lines": [LINE2]}]}
    doc["operations"] = {"alerts": {"name": name, "interval_s": 1, "webhooks": [webhook],
                                    "retry_s": 1,
                                    **({"mqtt": {"port": mqtt_port}} if mqtt_port else {})}}
    if database:
        doc["operations"]["database"] = {"url": database}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return Server(name, path, f"http://127.0.0.1:{port}")


def long_down(scenario: dict) -> tuple[float, float]:
    """(start, end) in s since t0 of press-02's 20 s DOWN, from the seeded model."""
    sc = Scenario.model_validate(scenario)
    spec = next(m for m in sc.machines() if m.id == "press-02")
    for seg in MachineModel(spec, sc.timeline, sc.seed).segments():
        if seg.state is State.DOWN:
            return seg.start, seg.end
    raise AssertionError("press-02 has no DOWN")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgresql):
    """The plant's whole run, the alert's restart included; the servers keep serving."""
    import services

    tmp = tmp_path_factory.mktemp("ops-e2e")
    down_start, down_end = long_down(SCENARIO)
    assert down_end <= SCENARIO["timeline"]["lead_in_s"] + 60, "the 20 s stop ends in the shift"
    with services.mosquitto(tmp / "mosquitto") as broker:
        files = write_configs(tmp / "stack", SCENARIO, mqtt_port=broker.port,
                              http_port=free_port())
        base = yaml.safe_load(files.server.read_text())
        pg_url = postgresql.create_database("ops_e2e")
        hook_sqlite, hook_pg = Webhook(), Webhook()
        servers = [
            server_config(base, files.workdir, "sqlite", database=None,
                          webhook=hook_sqlite.url, mqtt_port=None, maintain=True),
            server_config(base, files.workdir, "pg-a", database=pg_url,
                          webhook=hook_pg.url, mqtt_port=broker.port, maintain=False),
            server_config(base, files.workdir, "pg-b", database=pg_url,
                          webhook=hook_pg.url, mqtt_port=broker.port, maintain=False)]
        listener = AlertListener(broker.port)
        sup = Supervisor(tmp / "logs")
        try:
            for s in servers:
                s.start(sup)
            for s in servers[:2]:  # one rule per database
                r = httpx.post(f"{s.url}/api/v1/alert-rules", headers=ENG, timeout=10, json={
                    "name": "machine down > 10 s", "kind": "state", "scope": LINE2,
                    "for_s": 10})
                assert r.status_code == 201, r.text
            server_procs = list(sup.procs)
            plant, _, _ = start_plant_stack(sup, files)
            wait_until(lambda: files.truth.read_text().startswith('{"type":"scenario"'), 10,
                       "the truth log's header")
            t0 = load_truth(files.truth).t0
            opened = [("open", PRESS2)]
            wait_until(lambda: hook_sqlite.events() == opened and hook_pg.events() == opened
                       and len(listener.got) == 1, down_end + 30 - (time.time() - t0 / S),
                       "the alert to open and be delivered")
            assert time.time() < t0 / S + down_end, "opened while the machine is still down"
            for _, proc in server_procs:  # every server down; the machine runs again
                proc.terminate()
                proc.wait(30)
            sup.procs = [p for p in sup.procs if p not in server_procs]
            wait_until(lambda: time.time() > t0 / S + down_end + 2, 40, "the stop's end")
            for s in servers:
                s.start(sup)
            plant.wait(timeout=120)
            assert plant.returncode == 0
            wait_until(lambda: len(hook_sqlite.got) == 2 and len(hook_pg.got) == 2
                       and len(listener.got) == 2, 30, "the alert to resolve")
            time.sleep(3)  # several evaluation rounds: nothing more is sent
            yield {"files": files, "truth": load_truth(files.truth), "servers": servers,
                   "hooks": (hook_sqlite, hook_pg), "mqtt": listener}
        finally:
            listener.close()
            sup.stop_all()


def test_an_alert_for_a_20s_stop_is_delivered_once_and_survives_a_restart(stack):
    topic = contract.alert_topic(PRESS2)
    for hook in stack["hooks"]:
        assert hook.events() == [("open", PRESS2), ("resolve", PRESS2)]
        assert hook.got[0]["alert"]["value"] > 10
    assert stack["mqtt"].events() == [("open", topic), ("resolve", topic)]
    for s in stack["servers"]:
        alerts = s.api("alerts")
        assert [(a["asset"], a["status"]) for a in alerts] == [(PRESS2, "resolved")]


def test_machine_given_reasons_reach_the_pareto_as_in_the_ground_truth(stack):
    truth = stack["truth"]
    window = truth.shift_window()
    for s in stack["servers"]:
        for machine in LINE1_MACHINES + [f"{LINE2}/cnc-02", PRESS2]:
            got = s.api("pareto", scope=machine, start=iso(window[0]), end=iso(window[1]))
            want = truth.pareto(machine, *window)
            print(f"{s.name} {machine}: " + ", ".join(
                f"{r['reason']} {r['count']}x {r['seconds']:.2f}/"
                f"{want.get(r['reason'], {}).get('seconds', 0):.2f}s" for r in got["reasons"]))
            have = {r["reason"]: r for r in got["reasons"]}
            assert set(have) == {k for k in want if k is not None}, (machine, got, want)
            for reason, row in have.items():
                assert row["count"] == want[reason]["count"], (machine, reason)
                assert row["from_machine"] == row["count"]
                assert row["seconds"] == pytest.approx(want[reason]["seconds"],
                                                       abs=0.25 * row["count"])
            nothing = want.get(None, {"count": 0, "seconds": 0})
            assert got["unclassified"]["count"] == nothing["count"], machine
            assert got["unclassified"]["seconds"] == pytest.approx(
                nothing["seconds"], abs=0.25 * max(1, nothing["count"]))
        stops = s.api("stops", scope=LINE1, start=iso(window[0]), end=iso(window[1]))["stops"]
        want_stops = truth.stops(LINE1_MACHINES, *window)
        assert sorted((g["machine"], g["machine_reason"]) for g in stops) == sorted(
            (m, ep.reason) for m, ep in want_stops)


def quiet_moment(truth, machines: list[str], lo: int, hi: int) -> tuple[int, int]:
    """(moment, margin ns): the point of [lo, hi] farthest from any part, reject or state
    change of ``machines``, as an order changes over on a line that is not making parts.
    The edge stamps a Modbus counter sample when it reads it, up to a poll (and, with
    the other core busy, a few hundred ms) after the part; an order boundary within
    that lag of a part would move the part to the other order (1 part in 30 s is 0.02
    of performance here), a boundary in a quiet moment cannot."""
    events = sorted({lo, hi} | {t for a in machines for m in [truth.machine(a)]
                                for t in (*m.part_ts, *m.reject_ts,
                                          *(iv.start for iv in m.intervals))
                                if lo <= t <= hi})
    a, b = max(zip(events, events[1:], strict=False), key=lambda g: g[1] - g[0])
    return (a + b) // 2, (b - a) // 2


def test_oee_by_order_and_product_and_parts_against_plan_match_the_ground_truth(stack):
    truth = stack["truth"]
    s0, s1 = truth.shift_window()
    mid, margin = quiet_moment(truth, LINE1_MACHINES, s0 + 20 * S, s1 - 20 * S)
    print(f"order change at shift + {(mid - s0) / S:.2f} s, {margin / S:.2f} s from any event")
    assert margin >= S // 2, "the scenario gives line 1 no quiet moment for the changeover"
    server = stack["servers"][0]
    orders = (("E2E-1", "SHAFT", s0, mid), ("E2E-2", "FLANGE", mid, s1))
    for no, product, a, b in orders:
        r = httpx.post(f"{server.url}/api/v1/orders", headers=ENG, timeout=10, json={
            "order_no": no, "line": LINE1, "product": product, "planned_qty": 200,
            "planned_start": iso(a), "planned_end": iso(b)})
        assert r.status_code == 201, r.text
    doc = server.api("orders", scope=LINE1, start=iso(s0), end=iso(s1))
    for got, (no, product, a, b) in zip(doc["orders"], orders, strict=True):
        want = truth.oee(LINE1_MACHINES, a, b)
        print(f"{no}: OEE {got['oee']:.4f}/{want['oee']:.4f}, good {got['good']}/"
              f"{want['counts']['good']} of {got['planned_qty']}")
        assert got["order_no"] == no and got["status"] == "done"
        for k in ("availability", "performance", "quality", "oee"):
            assert got[k] == pytest.approx(want[k], abs=0.01), (no, k)
        assert got["progress"] == pytest.approx(want["counts"]["good"] / 200, abs=0.01)
        assert doc["by_product"][product]["oee"] == pytest.approx(want["oee"], abs=0.01)


def test_an_operator_classifies_two_stops_in_the_browser(stack, tmp_path):
    server = stack["servers"][0]
    truth = stack["truth"]
    s0, s1 = truth.shift_window()
    win = {"scope": LINE2, "start": iso(s0 - 10 * S), "end": iso(s1 + 10 * S)}
    before = server.api("pareto", **win)
    assert before["reasons"] == [] and before["unclassified"]["count"] >= 2
    errors: list[str] = []  # console errors
    page_errors: list[str] = []  # exceptions, in either view
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1024, "height": 768}, has_touch=True)
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        page.goto(f"{server.url}/?token={TOKENS['op2']}#/operator/{LINE2}")
        page.wait_for_selector("[data-testid=whoami][data-role=operator]")
        stops = page.locator("[data-testid=stops] [data-stop-start]")
        stops.first.wait_for()
        n = stops.count()
        picked = []
        for reason in ("STARVED", "TOOLING"):
            card = stops.first
            picked.append((card.get_attribute("data-machine"),
                           card.get_attribute("data-stop-start"),
                           float(card.get_attribute("data-duration"))))
            card.tap()
            page.locator(f"[data-testid=sheet] [data-reason={reason}]").tap()
            page.wait_for_function(
                "([n]) => document.querySelectorAll('[data-testid=stops] [data-stop-start]')"
                ".length === n", arg=[n - len(picked)])
        page.wait_for_selector("[data-testid=pareto-STARVED]")
        page.wait_for_selector("[data-testid=pareto-TOOLING]")
        page.wait_for_function("() => document.querySelectorAll("
                               "'[data-testid=audit] tbody tr').length === 2")
        page.screenshot(path=str(tmp_path / "operator.png"), full_page=True)
        audit_text = page.locator("[data-testid=audit]").inner_text()
        page.locator("[data-testid=alerts] tr[data-status=resolved]").wait_for()
        alert_rows = page.locator("[data-testid=alerts] tr[data-status]").count()
        page.locator("[data-testid=lang]").click()
        page.wait_for_selector("[data-testid=view-operator] >> text=未分类停机")
        page.screenshot(path=str(tmp_path / "operator-zh.png"), full_page=True)
        # the line view's plan card: the line's order, parts made vs plan
        order = {"order_no": "E2E-L2", "line": LINE2, "product": "GEAR", "planned_qty": 100,
                 "planned_start": iso(s0), "planned_end": iso(s1)}
        assert httpx.post(f"{server.url}/api/v1/orders", headers=ENG, timeout=10,
                          json=order).status_code == 201
        operator_errors = list(errors)
        failed: list[str] = []  # the line view asks for a trend by shift: without a shift
        page.on("response", lambda r: r.status >= 400 and "granularity=shift" not in r.url
                and failed.append(f"{r.status} {r.url}"))  # calendar that is a 422
        page.goto(f"{server.url}/#/asset/{quote(LINE2, safe='')}")
        row = page.locator("[data-testid=plan] [data-testid=order-E2E-L2]")
        row.wait_for()
        page.locator("[data-testid=plan] [data-testid=product-GEAR]").wait_for()
        cells = row.locator("td").all_inner_texts()
        browser.close()
    planned = server.api("orders", scope=LINE2, start=iso(s0), end=iso(s1))["orders"]
    assert [o["order_no"] for o in planned] == ["E2E-L2"]
    assert cells[:3] == ["E2E-L2", "GEAR", "100"]
    assert cells[5] == f"{round(planned[0]['good']):,}" and planned[0]["good"] > 0
    assert operator_errors == [] and failed == [] and page_errors == []
    after = server.api("pareto", **win)
    have = {r["reason"]: r for r in after["reasons"]}
    assert set(have) == {"STARVED", "TOOLING"}
    assert have["STARVED"]["seconds"] == pytest.approx(picked[0][2], abs=1e-6)
    assert have["TOOLING"]["seconds"] == pytest.approx(picked[1][2], abs=1e-6)
    assert after["unclassified"]["count"] == before["unclassified"]["count"] - 2
    assert after["unclassified"]["seconds"] == pytest.approx(
        before["unclassified"]["seconds"] - picked[0][2] - picked[1][2], abs=1e-6)
    changes = server.api("stops/audit", **win)["changes"]
    assert [(c["machine"], c["stop_start"], c["new"], c["old"], c["who"]) for c in changes] == [
        (picked[1][0], picked[1][1], "TOOLING", None, "Omar (line 2)"),
        (picked[0][0], picked[0][1], "STARVED", None, "Omar (line 2)")]
    assert "Omar (line 2)" in audit_text
    assert alert_rows == 1  # press-02's 20 s stop, shown in the operator's view
    # the operator's token cannot touch line 1 or the plans
    op = {"Authorization": f"Bearer {TOKENS['op2']}"}
    line1 = server.api("stops", scope=LINE1, start=win["start"], end=win["end"])["stops"][0]
    assert httpx.post(f"{server.url}/api/v1/stops/reason", headers=op, json={
        "machine": line1["machine"], "stop_start": line1["stop_start"],
        "reason": "STARVED"}).status_code == 403
    assert httpx.post(f"{server.url}/api/v1/orders", headers=op, json={
        "order_no": "X-1", "line": LINE2, "product": "P", "planned_qty": 1,
        "planned_start": iso(s0), "planned_end": iso(s1)}).status_code == 403


def test_an_operator_enters_counts_in_the_browser(stack, tmp_path):
    server, other = stack["servers"][0], stack["servers"][1]  # other: its own database
    truth = stack["truth"]
    s0, s1 = truth.shift_window()
    shift = {"start": iso(s0), "end": iso(s1)}
    cnc2 = f"{LINE2}/cnc-02"
    before = {m: server.api("oee", scope=m, **shift) for m in (cnc2, PRESS2)}
    at = (s1 - 5 * S) // S * S  # the rejects are of this shift's parts: entered within it
    at_local = datetime.fromtimestamp(at / S, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1024, "height": 768}, has_touch=True,
                                timezone_id="UTC")
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/?token={TOKENS['op2']}#/operator/{LINE2}")
        page.wait_for_selector("[data-testid=whoami][data-role=operator]")
        form = page.locator("[data-testid=counts]")
        entries = "document.querySelectorAll('[data-testid=count-entries] tr[data-entry]')"
        # rejects found at end-of-line inspection on press-02: 4, one more on the + key
        form.locator(f"[data-machine='{PRESS2}']").tap()
        form.locator("[data-kind=reject]").tap()
        form.locator("[data-testid=count-qty]").fill("4")
        form.locator(".qty [data-step='1']").tap()
        form.locator("[data-testid=count-at]").fill(at_local)
        form.locator("[data-testid=count-comment]").fill("burrs found at inspection")
        form.locator("[data-testid=count-save]").tap()
        page.wait_for_function(f"() => {entries}.length === 1")
        # parts cnc-02 made that its counter missed
        form.locator(f"[data-machine='{cnc2}']").tap()
        form.locator("[data-kind=total]").tap()
        form.locator("[data-testid=count-qty]").fill("7")
        form.locator("[data-testid=count-at]").fill(at_local)
        form.locator("[data-testid=count-save]").tap()
        page.wait_for_function(f"() => {entries}.length === 2")
        # recounted: the rejects were 6
        page.once("dialog", lambda d: d.accept("6"))
        form.locator("[data-testid=count-entries] tr[data-kind=reject] [data-act=edit]").tap()
        page.wait_for_function("() => document.querySelectorAll("
                               "'[data-testid=count-audit] tbody tr').length === 3")
        page.screenshot(path=str(tmp_path / "operator-counts.png"), full_page=True)
        audit_text = form.locator("[data-testid=count-audit]").inner_text()
        page.locator("[data-testid=lang]").click()
        page.wait_for_selector("[data-testid=counts] >> text=录入数量")
        page.screenshot(path=str(tmp_path / "operator-counts-zh.png"), full_page=True)
        browser.close()
    assert errors == []
    listed = server.api("counts", scope=LINE2, **shift)["entries"]
    at_z = iso(at).replace("+00:00", "Z")
    assert [(e["machine"], e["kind"], e["quantity"], e["at"], e["comment"], e["created_by"])
            for e in listed] == [
        (PRESS2, "reject", 6, at_z, "burrs found at inspection", "Omar (line 2)"),
        (cnc2, "total", 7, at_z, None, "Omar (line 2)")]
    changes = server.api("counts/audit", scope=LINE2, **shift)["changes"]
    assert [(c["action"], c["who"], (c["old"] or {}).get("quantity"), c["new"]["quantity"])
            for c in changes] == [("change", "Omar (line 2)", 5, 6),
                                  ("add", "Omar (line 2)", None, 7),
                                  ("add", "Omar (line 2)", None, 5)]
    assert "Omar (line 2)" in audit_text
    # the shift's figures: the ground truth with the entries applied
    after = {m: server.api("oee", scope=m, **shift) for m in (cnc2, PRESS2)}
    press, want = after[PRESS2], truth.oee(PRESS2, s0, s1)
    print(f"press-02: Q {press['quality']:.4f}, truth with the entry "
          f"{(want['counts']['good'] - 6) / want['counts']['total']:.4f}; answered from "
          f"{press['answered_from']}")
    assert press["counts"]["total"] == before[PRESS2]["counts"]["total"]
    assert press["counts"]["reject"] == before[PRESS2]["counts"]["reject"] + 6
    assert press["quality"] == pytest.approx(
        (want["counts"]["good"] - 6) / want["counts"]["total"], abs=0.01)
    assert press["answered_from"]["count_entries"] == 1
    cnc = after[cnc2]
    assert cnc["counts"]["total"] == before[cnc2]["counts"]["total"] + 7
    assert cnc["ideal_production_time_s"] == pytest.approx(
        before[cnc2]["ideal_production_time_s"] + 7 * 0.5)
    assert cnc["performance"] > before[cnc2]["performance"]
    # a server on another operations database (same store) knows nothing of them
    assert other.api("oee", scope=PRESS2, **shift)["counts"] == before[PRESS2]["counts"]
    # the operator cannot enter counts for line 1
    op = {"Authorization": f"Bearer {TOKENS['op2']}"}
    assert httpx.post(f"{server.url}/api/v1/counts", headers=op, json={
        "machine": LINE1_MACHINES[0], "kind": "reject", "quantity": 1}).status_code == 403
