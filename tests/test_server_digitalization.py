"""Digitalization indicators on a three-enterprise registry equal hand-computed values."""

from __future__ import annotations

import time

import pytest
import yaml
from fastapi.testclient import TestClient

from shopfloor.config import ConfigError
from shopfloor.contract import DevicePath, Sample
from shopfloor.server.app import create_app
from shopfloor.server.config import ServerConfig
from shopfloor.server.registry import Registry, registry_from_csv
from shopfloor.storage.sqlite import SqliteStore

DAY_NS = 86400 * 10**9
# enterprise, equipment, digital, NC, key process, last data (days ago; None = never)
FLEET = [
    ("alpha", "a1", True, True, True, 0), ("alpha", "a2", True, False, True, 0),
    ("alpha", "a3", False, False, True, None),
    ("beta", "b1", True, True, True, 2), ("beta", "b2", True, True, False, 0),
    ("gamma", "c1", False, False, False, None),
]
CSV = "cluster,enterprise,site,workshop,line,equipment,digital,numerically_controlled," \
      "key_process\n" + "".join(
          f"park,{e},s1,w1,l1,{q},{d},{n},{k}\n" for e, q, d, n, k, _ in FLEET)


@pytest.fixture(params=["yaml", "csv"])
def client(request, tmp_path):
    if request.param == "csv":
        (tmp_path / "registry.csv").write_text(CSV)
        reg = "registry.csv"
    else:
        # the same fleet as a nested YAML tree
        (tmp_path / "in.csv").write_text(CSV)
        (tmp_path / "registry.yaml").write_text(
            yaml.safe_dump(registry_from_csv(tmp_path / "in.csv")))
        reg = "registry.yaml"
    store = SqliteStore(tmp_path / "store.db")
    now = time.time_ns()
    store.write([(DevicePath(e, "s1", "w1", "l1", q), Sample("state", now - ago * DAY_NS,
                                                           "PRODUCING"))
                 for e, q, *_, ago in FLEET if ago is not None])
    store.close()
    cfg = ServerConfig.model_validate({
        "registry": reg, "store": {"embedded": {"path": str(tmp_path / "store.db")}},
        "digitalization": {"networked_window_s": 86400}})
    with TestClient(create_app(cfg, tmp_path)) as c:
        yield c


def test_rates_per_enterprise_pooled_and_mean(client):
    doc = client.get("/api/v1/digitalization", params={"scope": "park"}).json()
    per = {e["id"]: e for e in doc["enterprises"]}
    assert (per["alpha"]["equipment_digitalization_rate"], per["alpha"]["networking_rate"],
            per["alpha"]["key_process_nc_rate"]) == (2 / 3, 2 / 3, 1 / 3)
    assert (per["beta"]["equipment_digitalization_rate"], per["beta"]["networking_rate"],
            per["beta"]["key_process_nc_rate"]) == (1.0, 1 / 2, 1.0)
    assert (per["gamma"]["equipment_digitalization_rate"], per["gamma"]["networking_rate"],
            per["gamma"]["key_process_nc_rate"]) == (0.0, 0.0, None)
    assert doc["counts"] == {"equipment": 6, "digital": 4, "networked": 3, "key_process": 4,
                             "key_process_nc": 2}
    assert doc["pooled"] == {"equipment_digitalization_rate": 4 / 6,
                             "networking_rate": 3 / 6, "key_process_nc_rate": 2 / 4}
    mean = doc["mean_of_enterprise_rates"]
    assert mean["equipment_digitalization_rate"] == (2 / 3 + 1.0 + 0.0) / 3
    assert mean["networking_rate"] == (2 / 3 + 1 / 2 + 0.0) / 3
    assert mean["key_process_nc_rate"] == (1 / 3 + 1.0) / 2
    assert "mean" in mean["note"]


def test_networking_window_is_measured(client):
    # a 3-day window also counts b1, last heard from 2 days ago
    doc = client.get("/api/v1/digitalization",
                     params={"scope": "beta", "networked_window_s": 3 * 86400}).json()
    assert doc["pooled"]["networking_rate"] == 1.0 and "enterprises" not in doc


def test_compare_ranks_enterprises_beside_published_figures(client):
    doc = client.get("/api/v1/compare", params={
        "scope": "park", "metric": "key_process_nc_rate"}).json()
    assert [(e["id"], e["rank"]) for e in doc["enterprises"]] == [
        ("beta", 1), ("alpha", 2), ("gamma", None)]
    assert doc["pooled"] == 0.5 and doc["mean_of_enterprise_rates"] == (1 / 3 + 1.0) / 2
    assert {"region": "China", "as_of": "2023-12", "value_percent": 62.9}.items() <= next(
        p for p in doc["published"] if p["as_of"] == "2023-12").items()


@pytest.mark.parametrize("params, status, words", [
    ({"scope": "alpha", "metric": "networking_rate"}, 422, "use scope=park"),
    ({"scope": "park", "metric": "speed"}, 422, "networking_rate"),
    ({"scope": "park", "metric": "oee"}, 422, "needs start and end"),
    ({"scope": "nowhere", "metric": "oee"}, 404, "no asset"),
])
def test_compare_errors_are_actionable(client, params, status, words):
    r = client.get("/api/v1/compare", params=params)
    assert r.status_code == status and words in r.text, r.text


def test_compare_on_oee(client):
    doc = client.get("/api/v1/compare", params={
        "scope": "park", "metric": "oee", "start": "2026-01-01T00:00:00Z",
        "end": "2026-01-01T01:00:00Z"}).json()
    assert [e["id"] for e in doc["enterprises"]] == ["alpha", "beta", "gamma"]
    assert all(e["oee"] is None and e["rank"] is None for e in doc["enterprises"])


def test_bad_csv_names_file_and_problem(tmp_path):
    bad = tmp_path / "r.csv"
    bad.write_text("cluster,enterprise,site,workshop,line,equipment,digital\n"
                   "park,a,s,w,l,e1,maybe\n")
    with pytest.raises(ConfigError, match="r.csv:2: digital='maybe'"):
        Registry.load(bad)
    bad.write_text("cluster,enterprise\npark,a\n")
    with pytest.raises(ConfigError, match="missing: site"):
        Registry.load(bad)
