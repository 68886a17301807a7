"""The server's API on a real embedded store holding hand-made samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from shopfloor.config import ConfigError, load_config
from shopfloor.contract import DevicePath, Sample
from shopfloor.server.app import create_app
from shopfloor.server.config import ServerConfig
from shopfloor.storage.sqlite import SqliteStore

SAMPLES = Path(__file__).parents[1] / "server"
S = 1_000_000_000
T0 = 1_763_800_000 * S  # 2025-11-22T08:26:40Z
CNC = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")


def iso(ns: int) -> str:
    from datetime import UTC, datetime
    return datetime.fromtimestamp(ns / S, UTC).isoformat()


def server_config(tmp_path: Path, oee: dict) -> ServerConfig:
    """The server on tmp_path's registry.yaml and embedded store.db."""
    return ServerConfig.model_validate({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(tmp_path / "store.db")}},
        "oee": oee})


@pytest.fixture
def client(tmp_path):
    store = SqliteStore(tmp_path / "store.db")
    # 100 s window: PRODUCING 0-50, DOWN 50-60, PLANNED_STOP 60-70, PRODUCING 70-100.
    states = [(-5, "NO_SHIFT"), (0, "PRODUCING"), (50, "DOWN"), (60, "PLANNED_STOP"),
              (70, "PRODUCING")]
    rows = [(CNC, Sample("state", T0 + t * S, v)) for t, v in states]
    # 150 parts (counter 1000 -> 1150, with a reset to 0 at 70 s), 15 rejects.
    parts = [(-1, 1000), (20, 1060), (49, 1100), (70, 0), (99, 50)]
    rows += [(CNC, Sample("part_count", T0 + t * S, v)) for t, v in parts]
    rows += [(CNC, Sample("reject_count", T0 + t * S, v)) for t, v in [(-1, 5), (99, 20)]]
    store.write(rows)
    store.close()
    registry = yaml.safe_load((SAMPLES / "registry.sample.yaml").read_text())
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(registry))
    cfg = server_config(tmp_path, {"stale_after_s": 60})
    with TestClient(create_app(cfg, tmp_path)) as c:
        yield c


def test_oee_of_one_machine(client):
    r = client.get("/api/v1/oee", params={
        "scope": "acme/plant1/machining/line1/cnc-01", "start": iso(T0), "end": iso(T0 + 100 * S)})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["times_s"]["PRODUCING"] == pytest.approx(80)
    assert doc["times_s"]["DOWN"] == pytest.approx(10)
    assert doc["planned_busy_time_s"] == pytest.approx(90)
    assert doc["counts"] == {"total": 150.0, "good": 135.0, "reject": 15.0}
    assert doc["availability"] == pytest.approx(80 / 90)
    assert doc["performance"] == pytest.approx(0.5 * 150 / 80)
    assert doc["quality"] == pytest.approx(135 / 150)
    assert doc["oee"] == pytest.approx(80 / 90 * 0.5 * 150 / 80 * 135 / 150)


def test_rollup_sums_and_counts_silent_equipment(client):
    # The line holds cnc-01 and a legacy lathe that never publishes: the lathe's time
    # is OFFLINE (outside planned busy time), its counts zero; ratios equal cnc-01's.
    line = client.get("/api/v1/oee", params={
        "scope": "acme/plant1/machining/line1", "start": iso(T0), "end": iso(T0 + 100 * S)}).json()
    assert line["equipment"] == 2
    assert line["equipment_without_data"] == ["acme/plant1/machining/line1/lathe-07"]
    assert line["times_s"]["OFFLINE"] == pytest.approx(100)
    assert line["availability"] == pytest.approx(80 / 90)
    assert "data_gaps" in line["flags"]
    cluster = client.get("/api/v1/oee", params={
        "scope": "demo-cluster", "start": iso(T0), "end": iso(T0 + 100 * S)}).json()
    assert cluster["oee"] == pytest.approx(line["oee"])


def test_assets_tree(client):
    tree = client.get("/api/v1/assets").json()
    assert tree["id"] == "demo-cluster" and tree["level"] == "cluster"
    line = tree["children"][0]["children"][0]["children"][0]["children"][0]
    assert [e["id"] for e in line["children"]] == [
        "acme/plant1/machining/line1/cnc-01", "acme/plant1/machining/line1/lathe-07"]


@pytest.mark.parametrize("params, status, words", [
    ({"scope": "nope", "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
     404, "no asset"),
    ({"scope": "acme", "start": "yesterday", "end": "2026-01-02T00:00:00Z"},
     422, "ISO 8601"),
    ({"scope": "acme", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
     422, "after start"),
    ({"scope": "acme", "start": "2026-01-01T00:00:00Z"}, 422, "end"),
])
def test_bad_requests_get_actionable_errors(client, params, status, words):
    r = client.get("/api/v1/oee", params=params)
    assert r.status_code == status
    assert words in r.text


def test_health_and_openapi(client):
    assert client.get("/healthz").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert "/api/v1/oee" in spec["paths"] and "/api/v1/assets" in spec["paths"]


def test_sample_config_loads():
    cfg = load_config(SAMPLES / "server.sample.yaml", ServerConfig)
    assert cfg.registry.name == "registry.sample.yaml"


def test_bad_config_names_file_and_key(tmp_path):
    bad = tmp_path / "server.yaml"
    bad.write_text("registry: r.yaml\nstore: {embedded: {path: x.db}}\nhttp: {prot: 80}\n")
    with pytest.raises(ConfigError) as e:
        load_config(bad, ServerConfig)
    assert str(bad) in str(e.value) and "http.prot" in str(e.value)


def test_current_state_and_dashboard(client):
    states = client.get("/api/v1/state", params={"scope": "acme/plant1/machining/line1"}).json()
    # hand-made samples are from 2025: too old to be live, so OFFLINE, never "running"
    assert {s["id"]: s["state"] for s in states} == {
        "acme/plant1/machining/line1/cnc-01": "OFFLINE",
        "acme/plant1/machining/line1/lathe-07": "OFFLINE"}
    page = client.get("/")
    assert page.status_code == 200 and "/static/js/main.js" in page.text


def test_dashboard_assets_are_served_locally(client):
    """Plants are often offline: the page and its scripts name no other host."""
    import re
    static = SAMPLES / "static"
    files = [static / "index.html", static / "style.css", *sorted((static / "js").glob("*.js"))]
    assert len(files) >= 6
    for f in files:
        assert not re.search(r"https?://|//cdn|@import", f.read_text()), f
        r = client.get("/" if f.name == "index.html" else f"/static/{f.relative_to(static)}")
        assert r.status_code == 200 and r.text == f.read_text(), f
    for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', client.get("/").text):
        assert client.get(src).status_code == 200, src
    for js in (static / "js").glob("*.js"):  # every module import resolves
        for name in re.findall(r'from "\./([\w.]+)"', js.read_text()):
            assert (static / "js" / name).is_file(), (js, name)
    assert client.get("/static/vendor/echarts.min.js").headers["content-type"].startswith(
        ("application/javascript", "text/javascript"))


def test_live_stream_sends_state_and_shift_oee(client):
    with client.stream("GET", "/api/v1/stream", params={
            "scope": "acme/plant1/machining/line1", "interval_s": 0.2, "max_events": 2}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = "".join(r.iter_text())
    events = [block.split("\n") for block in body.strip().split("\n\n")]
    assert [e[0] for e in events] == ["event: state", "event: oee"]
    import json
    states = json.loads(events[0][1].removeprefix("data: "))
    assert {s["state"] for s in states} == {"OFFLINE"}
    shift = json.loads(events[1][1].removeprefix("data: "))
    assert shift["shift"] == "day" and shift["oee"] is None  # no data today


def test_ideal_cycle_time_per_product(tmp_path):
    # product A (ICT 0.5 s) until 50 s, then B (ICT 2 s); program 7 (a number) at 80 s
    # has no ICT of its own and uses the default (1 s). Parts: 60 of A, 10 of B, 5 of 7.
    store = SqliteStore(tmp_path / "store.db")
    rows = [(CNC, Sample("state", T0 + t * S, v)) for t, v in [(0, "PRODUCING")]]
    rows += [(CNC, Sample("product", T0 + t * S, v)) for t, v in [(-9, "A"), (50, "B"),
                                                                   (80, 7)]]
    rows += [(CNC, Sample("part_count", T0 + t * S, v))
             for t, v in [(-1, 0), (30, 40), (49, 60), (70, 70), (90, 75)]]
    rows += [(CNC, Sample("reject_count", T0 + t * S, v)) for t, v in [(-1, 0), (60, 2)]]
    store.write(rows)
    store.close()
    reg = yaml.safe_load((SAMPLES / "registry.sample.yaml").read_text())
    eq = reg["enterprises"][0]["sites"][0]["workshops"][0]["lines"][0]["equipment"][0]
    eq.update(ideal_cycle_time_s=1.0, ideal_cycle_times_s={"A": 0.5, "B": 2.0})
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(reg))
    cfg = server_config(tmp_path, {"stale_after_s": 1000, "small_stop_s": 0})
    with TestClient(create_app(cfg, tmp_path)) as c:
        doc = c.get("/api/v1/losses", params={
            "scope": "acme/plant1/machining/line1/cnc-01", "start": iso(T0),
            "end": iso(T0 + 100 * S)}).json()
    assert doc["ideal_production_time_s"] == pytest.approx(60 * 0.5 + 10 * 2.0 + 5 * 1.0)
    assert doc["losses_s"]["process_rejects"] == pytest.approx(2 * 2.0)  # 2 rejects of B
    assert doc["performance"] == pytest.approx(55 / 100)


def test_availability_never_exceeds_one_by_round_off():
    from shopfloor.contract import STATE_CODES, State
    from shopfloor.server import oee
    t = oee.Totals()
    # only PRODUCING in planned time; summing and subtracting these in float seconds
    # gives A = 1.0000000000000002
    t.state_ns[STATE_CODES[State.PRODUCING]] = 63_397_850_949
    t.state_ns[STATE_CODES[State.PLANNED_STOP]] = 2_095_328_387
    t.state_ns[STATE_CODES[State.NO_SHIFT]] = 901_749_038
    t.state_ns[STATE_CODES[State.OFFLINE]] = 959_191_865
    assert oee.report(t)["availability"] == 1.0


def test_trend_uses_the_ideal_cycle_time_per_product(tmp_path):
    # Two 1 h buckets around the hour H. A (ICT 0.5 s) until H-20 s, then B (2 s), then
    # program 7 (no ICT of its own: the default 1 s, or none) from H+50 s. Bucket 1: 80 A
    # + 5 B parts, ideal 50 s; bucket 2: 15 B + 10 of 7, ideal 40 s. One ICT of 1 s
    # would give 85 s and 25 s.
    h = T0 - T0 % (3600 * S) + 3600 * S
    store = SqliteStore(tmp_path / "store.db")
    rows = [(CNC, Sample("state", h - 150 * S, "PRODUCING"))]
    rows += [(CNC, Sample("product", h + t * S, v)) for t, v in [(-110, "A"), (-20, "B"),
                                                                  (50, 7)]]
    rows += [(CNC, Sample("part_count", h + t * S, v))
             for t, v in [(-101, 0), (-60, 80), (-10, 85), (30, 100), (90, 110)]]
    rows += [(CNC, Sample("reject_count", h + t * S, v)) for t, v in [(-101, 0), (30, 3)]]
    store.write(rows)
    store.close()
    reg = yaml.safe_load((SAMPLES / "registry.sample.yaml").read_text())
    eq = reg["enterprises"][0]["sites"][0]["workshops"][0]["lines"][0]["equipment"][0]
    eq.update(ideal_cycle_time_s=1.0, ideal_cycle_times_s={"A": 0.5, "B": 2.0})
    cfg = server_config(tmp_path, {"stale_after_s": 1000})
    window = {"scope": "acme/plant1/machining/line1/cnc-01", "start": iso(h - 100 * S),
              "end": iso(h + 100 * S)}
    for default in (1.0, None):
        eq["ideal_cycle_time_s"] = default
        (tmp_path / "registry.yaml").write_text(yaml.safe_dump(reg))
        with TestClient(create_app(cfg, tmp_path)) as c:
            r = c.get("/api/v1/trend", params={**window, "granularity": "1h"})
            assert r.status_code == 200, r.text
            b1, b2 = r.json()["buckets"]
            oee = c.get("/api/v1/oee", params=window).json()
        assert [b["start"][11:19] for b in (b1, b2)] == ["08:58:20", "09:00:00"]
        assert b1["counts"]["total"] == 85 and b2["counts"]["total"] == 25
        assert b1["performance"] == pytest.approx((80 * 0.5 + 5 * 2.0) / 100)
        assert "ideal_cycle_time_missing" not in b1["flags"]
        if default is None:  # program 7's 10 parts have no ICT: left out, and flagged
            assert b2["performance"] == pytest.approx(15 * 2.0 / 100)
            assert "ideal_cycle_time_missing" in b2["flags"]
            continue
        assert b2["performance"] == pytest.approx((15 * 2.0 + 10 * 1.0) / 100)
        assert b2["flags"] == []
        # the buckets add up to /oee's answer for the window
        assert oee["ideal_production_time_s"] == pytest.approx(90)
        assert oee["performance"] == pytest.approx(
            (b1["performance"] + b2["performance"]) / 2)


def test_requests_compile_no_kernel(client):
    """The app warms every kernel at start: serving requests adds no compiled signature
    (a request-time compile would cost seconds, on the first request of the day)."""
    from numba.core.registry import CPUDispatcher

    from shopfloor.server import kernels
    dispatchers = {n: k for n, k in vars(kernels).items()  # _helpers are inlined only
                   if isinstance(k, CPUDispatcher) and not n.startswith("_")}
    assert len(dispatchers) >= 8
    before = {n: list(k.signatures) for n, k in dispatchers.items()}
    assert all(before.values()), before  # warmed: every kernel has a signature already
    window = {"start": iso(T0 - 10 * S), "end": iso(T0 + 200 * S)}
    for path, extra in [("oee", {}), ("losses", {"small_stop_s": 5, "startup_s": 3}),
                        ("trend", {"granularity": "1h"}),
                        ("trend", {"granularity": "day"}), ("timeline", {})]:
        for scope in ("acme/plant1/machining/line1/cnc-01", "acme"):
            r = client.get(f"/api/v1/{path}", params={"scope": scope, **window, **extra})
            assert r.status_code == 200, (path, r.text)
    assert {n: list(k.signatures) for n, k in dispatchers.items()} == before


def test_offline_gap_and_bad_quality_counter(tmp_path):
    """The edge's OFFLINE sample (quality bad) during a device outage counts as OFFLINE in
    /oee, /losses and /timeline; a bad-quality counter value (a restarted device's
    placeholder 0) is neither a reset nor an increase."""
    from shopfloor.contract import Quality
    store = SqliteStore(tmp_path / "store.db")
    states = [(0, "PRODUCING", Quality.GOOD), (20, "OFFLINE", Quality.BAD),
              (30, "PRODUCING", Quality.GOOD), (50, "DOWN", Quality.GOOD)]
    rows = [(CNC, Sample("state", T0 + t * S, v, q)) for t, v, q in states]
    parts = [(0, 100, Quality.GOOD), (10, 105, Quality.GOOD), (30, 0, Quality.BAD),
             (31, 110, Quality.GOOD), (55, 112, Quality.UNCERTAIN), (56, 113, Quality.GOOD)]
    rows += [(CNC, Sample("part_count", T0 + t * S, v, q)) for t, v, q in parts]
    store.write(rows)
    assert store.read(CNC, "part_count", T0, T0 + 60 * S).good.tolist() == [
        q is Quality.GOOD for _, _, q in parts]
    store.close()
    (tmp_path / "registry.yaml").write_text((SAMPLES / "registry.sample.yaml").read_text())
    cfg = server_config(tmp_path, {"stale_after_s": 60, "small_stop_s": 0})
    scope = "acme/plant1/machining/line1/cnc-01"
    params = {"scope": scope, "start": iso(T0), "end": iso(T0 + 60 * S)}
    with TestClient(create_app(cfg, tmp_path)) as c:
        for path in ("/api/v1/oee", "/api/v1/losses"):
            doc = c.get(path, params=params).json()
            assert doc["times_s"]["OFFLINE"] == pytest.approx(10), path
            assert doc["times_s"]["PRODUCING"] == pytest.approx(40), path
            assert doc["planned_busy_time_s"] == pytest.approx(50), path
            assert doc["counts"]["total"] == 13, path  # 100 -> 113, the placeholder skipped
            assert "data_gaps" in doc["flags"], path
        tl = c.get("/api/v1/timeline", params=params).json()["equipment"][0]["intervals"]
        assert [i["state"] for i in tl] == ["PRODUCING", "OFFLINE", "PRODUCING", "DOWN"]
