"""The cluster server on aggregates pushed by two enterprises (issue 16): credentials,
idempotent upserts, monthly and quarterly history equal to the raw computation, published
figures and gaps, most improved, and exports that equal the API."""

from __future__ import annotations

import csv
import io
import logging
import sqlite3
from datetime import datetime

import openpyxl
import pytest
import yaml
from fastapi.testclient import TestClient
from federation_data import DAY, fill, machines
from federation_data import registry as registry_doc

from shopfloor.server import digitalization, oee
from shopfloor.server.config import ServerConfig
from shopfloor.server.federation import enterprise, periods
from shopfloor.server.federation.cluster import create_cluster_app
from shopfloor.server.federation.config import ClusterConfig
from shopfloor.server.rates import mean_of_defined
from shopfloor.server.registry import Registry
from shopfloor.server.rollup.source import QuantitySource
from shopfloor.storage.sqlite import SqliteStore
from shopfloor.times import datetime_ns

TOKENS = {"acme": "acme-token-0123456789", "bolt": "bolt-token-0123456789"}
OCT, NOV = datetime_ns(datetime(2026, 10, 5)), datetime_ns(datetime(2026, 11, 3))
NOW = datetime_ns(datetime(2026, 12, 1))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two enterprises' data (October: many failures; November: fewer) and their month
    aggregates, computed as their servers would."""
    tmp = tmp_path_factory.mktemp("cluster")
    with SqliteStore(tmp / "store.db") as store:
        fill(store, OCT, 3, machines(), down_share=0.5)
        fill(store, NOV, 3, machines(), down_share=0.1)
    (tmp / "registry.yaml").write_text(yaml.safe_dump(registry_doc()))
    reg = Registry.load(tmp / "registry.yaml")
    store = SqliteStore(tmp / "store.db")
    source = QuantitySource(store)

    def cfg(ent: str) -> ServerConfig:
        return ServerConfig.model_validate({
            "registry": "registry.yaml", "store": {"embedded": {"path": "x.db"}},
            "oee": {"stale_after_s": 3600}, "digitalization": {"networked_window_s": 40 * 86400},
            "federation": {"cluster_url": "http://x", "enterprise": ent,
                           "token": TOKENS[ent]}})
    aggs = {e: enterprise.aggregates(cfg(e), reg, source, "month", periods.parse("2026-10"),
                                     periods.parse("2026-11"), now=NOW) for e in TOKENS}
    yield tmp, reg, source, cfg("acme"), aggs
    store.close()


@pytest.fixture
def cluster(world, tmp_path):
    cfg = ClusterConfig.model_validate({
        "name": "park", "database": str(tmp_path / "cluster.db"), "enterprises": [
            {"id": "acme", "name": "Acme Precision", "sha256": digest(TOKENS["acme"])},
            {"id": "bolt", "token": TOKENS["bolt"]}]})
    with TestClient(create_cluster_app(cfg, tmp_path)) as c:
        for ent, aggs in world[4].items():
            for a in aggs:
                r = c.post("/api/v1/federation/aggregates", json=a.body(),
                           headers=bearer(TOKENS[ent]))
                assert r.status_code == 200, r.text
        yield c, tmp_path / "cluster.db"


def digest(token: str) -> str:
    from shopfloor.server.auth import token_hash
    return token_hash(token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_credentials_are_checked_and_refusals_logged_without_secrets(world, cluster, caplog):
    c, db = cluster
    body = world[4]["acme"][0].body()
    caplog.set_level(logging.INFO, "shopfloor.cluster")
    url = "/api/v1/federation/aggregates"
    assert c.post(url, json=body).status_code == 401
    assert c.post(url, json=body, headers=bearer("wrong-token-0123456789")).status_code == 401
    assert c.post(url, json=body, headers=bearer(TOKENS["bolt"])).status_code == 403
    text = caplog.text
    assert text.count("refused a push") == 3
    for secret in (*TOKENS.values(), "wrong-token-0123456789", digest(TOKENS["acme"])):
        assert secret not in text
    # nothing refused was stored
    n = sqlite3.connect(db).execute("SELECT COUNT(*) FROM aggregates").fetchone()[0]
    assert n == 4


def test_a_resend_overwrites_and_an_older_revision_is_ignored(world, cluster):
    c, db = cluster
    a = world[4]["bolt"][1]
    url, h = "/api/v1/federation/aggregates", bearer(TOKENS["bolt"])
    assert c.post(url, json=a.body(), headers=h).json()["outcome"] == "duplicate"
    older = {**a.body(), "revision": a.revision - 1, "label": a.label}
    assert c.post(url, json=older, headers=h).json()["outcome"] == "stale"
    newer = {**a.body(), "revision": a.revision + 1}
    assert c.post(url, json=newer, headers=h).json()["outcome"] == "replaced"
    rows = sqlite3.connect(db).execute(
        "SELECT enterprise, label, revision FROM aggregates ORDER BY 1, 2").fetchall()
    assert rows == [("acme", "2026-10", world[4]["acme"][0].revision),
                    ("acme", "2026-11", world[4]["acme"][1].revision),
                    ("bolt", "2026-10", world[4]["bolt"][0].revision),
                    ("bolt", "2026-11", a.revision + 1)]


def test_the_database_holds_aggregates_only(cluster):
    _, db = cluster
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"aggregates", "receipts"}
    cols = {c[1] for t in tables for c in conn.execute(f"PRAGMA table_info({t})")}
    assert not cols & {"ts", "value", "tag", "quality", "sample", "samples"}
    for (body,) in conn.execute("SELECT body FROM aggregates"):
        assert '"ts"' not in body and "part_count" not in body and "PRODUCING\": [" not in body


def window_report(world, scope_ids: list[str], month: str) -> dict:
    _, reg, source, cfg, _ = world
    t0, t1 = periods.parse(month).bounds(periods.ZoneInfo("UTC"))
    equipment = [a for s in scope_ids for a in reg.equipment_under(reg.get(s))]
    return oee.compute(source, equipment, oee.MetricsQuery.of(cfg.oee, t0, t1))


def test_monthly_history_equals_the_raw_computation(world, cluster):
    c, _ = cluster
    r = c.get("/api/v1/cluster/history", params={"start": "2026-10", "end": "2026-11"})
    assert r.status_code == 200, r.text
    docs = r.json()["periods"]
    assert [d["period"] for d in docs] == ["2026-10", "2026-11"]
    reg = world[1]
    for d in docs:
        rows = {e["id"]: e for e in d["enterprises"]}
        assert rows["acme"]["name"] == "Acme Precision" and rows["bolt"]["name"] == "bolt"
        for ent in ("acme", "bolt"):
            want = window_report(world, [ent], d["period"])
            for k in ("oee", "availability", "performance", "quality"):
                assert rows[ent][k] == pytest.approx(want[k], rel=1e-12)
        pooled = window_report(world, ["acme", "bolt"], d["period"])
        assert 0 < pooled["oee"] < 1 and pooled["counts"]["total"] > 0
        assert d["pooled"]["oee"] == pytest.approx(pooled["oee"], rel=1e-12)
        assert d["pooled"]["oee"] != d["mean_of_enterprises"]["oee"]
        assert d["mean_of_enterprises"]["oee"] == pytest.approx(
            mean_of_defined([rows["acme"]["oee"], rows["bolt"]["oee"]]))
        # digitalization exact: every machine but the legacy one published within 40 days
        now = NOW
        seen = {a.id: now for a in reg.equipment_under(reg.root) if a.id in machines()}
        dig = digitalization.indicators(reg, reg.root, seen, now, 40 * DAY)
        for rate in digitalization.RATES:
            assert d["pooled"][rate] == dig["pooled"][rate]
            assert d["mean_of_enterprises"][rate] == dig["mean_of_enterprise_rates"][rate]
        assert "mean" in d["mean_of_enterprises"]["note"]
        assert "summed" in d["pooled"]["note"]
    # fewer failures in November: both enterprises improved
    ranked = c.get("/api/v1/cluster/improved", params={
        "indicator": "availability", "start": "2026-10", "end": "2026-11"}).json()
    changes = [e["change_pp"] for e in ranked["enterprises"]]
    assert all(x > 0 for x in changes) and changes == sorted(changes, reverse=True)
    by = {d["period"]: {e["id"]: e for e in d["enterprises"]} for d in docs}
    top = ranked["enterprises"][0]
    assert top["change_pp"] == pytest.approx(
        (by["2026-11"][top["id"]]["availability"] - by["2026-10"][top["id"]]["availability"])
        * 100)


def test_a_quarter_sums_its_months(world, cluster):
    c, _ = cluster
    q = c.get("/api/v1/cluster/history",
              params={"granularity": "quarter", "start": "2026-Q4"}).json()["periods"]
    assert [d["period"] for d in q] == ["2026-Q4"]
    want = oee.compute(world[2], world[1].equipment_under(world[1].root), oee.MetricsQuery.of(
        world[3].oee, *periods.parse("2026-Q4").bounds(periods.ZoneInfo("UTC"))))
    assert want["oee"] > 0 and q[0]["pooled"]["oee"] == pytest.approx(want["oee"], rel=1e-12)
    assert all(e["months"] == ["2026-10", "2026-11"] and not e["complete"]
               for e in q[0]["enterprises"])


def test_published_figures_and_gaps(cluster):
    c, _ = cluster
    d = c.get("/api/v1/cluster/history", params={"start": "2026-11"}).json()["periods"][0]
    nc = d["published"]["key_process_nc_rate"]
    assert nc["regional"]["region"] == "Tianjin" and nc["regional"]["value_percent"] == 51.8
    assert nc["national"]["as_of"] == "2023-12" and nc["national"]["value_percent"] == 62.9
    assert nc["national_target"]["value_percent"] == 68  # the 2025 target, the latest
    acme = next(e for e in d["enterprises"] if e["id"] == "acme")
    assert acme["key_process_nc_rate"] == 0.5
    assert acme["gaps"]["key_process_nc_rate"] == {"to_regional_pp": pytest.approx(50 - 51.8),
                                                   "to_national_target_pp": -18.0}
    assert d["published"]["equipment_digitalization_rate"]["national_target"] is None
    old = c.get("/api/v1/cluster/history", params={"start": "2019-08"}).json()["periods"][0]
    # in August 2019 the Tianjin figure (2019-12) was not published yet; the national was
    assert old["published"]["key_process_nc_rate"]["regional"] is None
    assert old["published"]["key_process_nc_rate"]["national"]["as_of"] == "2019-06"
    assert old["enterprises"] == [] and old["pooled"]["oee"] is None


def test_exports_open_with_real_readers_and_equal_the_api(cluster):
    c, _ = cluster
    api = c.get("/api/v1/cluster/history", params={"start": "2026-11"}).json()["periods"][0]
    rows_api = [*api["enterprises"], {"id": "pooled", **api["pooled"]},
                {"id": "mean_of_enterprises", **api["mean_of_enterprises"]}]
    r = c.get("/api/v1/cluster/export/comparison", params={"period": "2026-11"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    got = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    x = c.get("/api/v1/cluster/export/comparison", params={"period": "2026-11",
                                                             "format": "xlsx"})
    wb = openpyxl.load_workbook(io.BytesIO(x.content))
    sheet = list(wb.worksheets[0].iter_rows(values_only=True))
    header, cells = sheet[0], sheet[1:]
    assert wb.sheetnames[1] == "definitions"
    assert [g["id"] for g in got] == [c_[0] for c_ in cells] == [r_["id"] for r_ in rows_api]
    for g, cell, want in zip(got, cells, rows_api, strict=True):
        xl = dict(zip(header, cell, strict=True))
        for k in ("oee", "availability", "networking_rate", "key_process_nc_rate",
                  "data_completeness"):
            v = None if want[k] is None else round(want[k] * 100, 2)
            assert xl[f"{k}_percent"] == v
            assert g[f"{k}_percent"] == ("" if v is None else str(v))
        gap = want["gaps"]["key_process_nc_rate"]["to_national_target_pp"]
        assert xl["key_process_nc_rate_gap_to_national_target_pp"] == round(gap, 2)
    one = c.get("/api/v1/cluster/export/enterprises/acme",
                params={"period": "2026-11", "format": "xlsx"})
    ws = openpyxl.load_workbook(io.BytesIO(one.content)).worksheets[0]
    table = {row[0]: dict(zip([h.value for h in ws[1]], row, strict=True))
             for row in ws.iter_rows(min_row=2, values_only=True)}
    acme = next(e for e in api["enterprises"] if e["id"] == "acme")
    assert table["oee"]["value_percent"] == round(acme["oee"] * 100, 2)
    assert table["oee"]["cluster_pooled_percent"] == round(api["pooled"]["oee"] * 100, 2)
    assert table["key_process_nc_rate"]["regional_percent"] == 51.8
    assert "关键工序数控化率" in table["key_process_nc_rate"]["definition"]
    q = c.get("/api/v1/cluster/export/enterprises/acme", params={"period": "2026-Q4"})
    assert q.status_code == 200 and "2026-Q4" in q.headers["content-disposition"]
    assert c.get("/api/v1/cluster/export/enterprises/nobody",
                 params={"period": "2026-11"}).status_code == 404
    assert c.get("/api/v1/cluster/export/comparison",
                 params={"period": "2026-11-03"}).status_code == 422


def test_reads_need_a_token_when_anonymous_reads_are_off(world, tmp_path):
    cfg = ClusterConfig.model_validate({
        "database": str(tmp_path / "c.db"), "auth": {"anonymous_read": False, "tokens": [
            {"name": "bureau", "token": "bureau-token-0123456789"}]}})
    with TestClient(create_cluster_app(cfg)) as c:
        assert c.get("/api/v1/cluster").status_code == 401
        ok = c.get("/api/v1/cluster", headers=bearer("bureau-token-0123456789"))
        assert ok.status_code == 200 and ok.json()["enterprises"] == []


@pytest.mark.parametrize("lang, heading", [("en", "Key-process NC rate"),
                                           ("zh", "关键工序数控化率")])
def test_the_printable_report_shows_the_api_figures(cluster, lang, heading):
    import re

    c, _ = cluster
    api = c.get("/api/v1/cluster/history", params={"start": "2026-Q4", "granularity":
                                                   "quarter"}).json()["periods"][0]
    r = c.get("/api/v1/cluster/report", params={"period": "2026-Q4", "lang": lang})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert f'lang="{lang}"' in page and heading in page and "<script" not in page
    sections = dict(re.findall(r'<section data-indicator="(\w+)">(.*?)</section>', page))
    assert list(sections) == list(api["pooled"])[:8]
    for ind, body in sections.items():
        values = re.findall(r'data-value="([^"]*)"', body)
        want = [r_[ind] for r_ in api["enterprises"]] + [api["pooled"][ind],
                                                         api["mean_of_enterprises"][ind]]
        assert [None if v == "" else float(v) for v in values] == want
        rows = len(want)  # two enterprises, pooled, mean; a tick per published figure
        assert body.count('stroke="#c00"') == {"key_process_nc_rate": 2 * rows,
                                               "equipment_digitalization_rate": rows
                                               }.get(ind, 0)
    assert page.count("数据完整率" if lang == "zh" else "data completeness") >= 8 * 4


def test_one_enterprise_history_and_the_cluster_listing(cluster):
    c, _ = cluster
    all_ = c.get("/api/v1/cluster/history", params={"start": "2026-10", "end": "2026-11"}
                 ).json()["periods"]
    one = c.get("/api/v1/cluster/enterprises/acme/history",
                params={"start": "2026-10", "end": "2026-11"}).json()["periods"]
    for a, o in zip(all_, one, strict=True):
        assert o["enterprise"] == next(e for e in a["enterprises"] if e["id"] == "acme")
        assert o["pooled"] == a["pooled"] and o["published"] == a["published"]
    assert c.get("/api/v1/cluster/enterprises/nobody/history",
                 params={"start": "2026-10"}).status_code == 404
    listing = c.get("/api/v1/cluster").json()
    assert [(e["id"], e["name"], e["aggregates"]) for e in listing["enterprises"]] == [
        ("acme", "Acme Precision", 2), ("bolt", "bolt", 2)]
