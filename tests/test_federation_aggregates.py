"""Federation aggregates (issue 16): an enterprise's day and month sums, computed by the
server's own metric code, roll up at the cluster to what the raw computation gives."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from federation_data import S, fill, machines
from federation_data import registry as registry_doc
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.server import digitalization, kernels, oee
from shopfloor.server.app import create_app
from shopfloor.server.config import ServerConfig
from shopfloor.server.federation import periods
from shopfloor.server.federation.aggregates import Aggregate, OeeTotals, aggregate
from shopfloor.server.registry import Registry
from shopfloor.server.rollup.source import QuantitySource
from shopfloor.storage.sqlite import SqliteStore
from shopfloor.times import datetime_ns

DAY1 = datetime_ns(datetime(2026, 11, 3))  # 2026-11-03T00:00Z


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fed")
    with SqliteStore(tmp / "store.db") as store:
        fill(store, DAY1, 3, machines())
    (tmp / "registry.yaml").write_text(yaml.safe_dump(registry_doc()))

    def cfg(ent: str) -> ServerConfig:
        return ServerConfig.model_validate({
            "registry": str(tmp / "registry.yaml"),
            "store": {"embedded": {"path": str(tmp / "store.db")}},
            "oee": {"stale_after_s": 3600}, "rollup": {"enabled": False},
            "federation": {"cluster_url": "http://127.0.0.1:9", "enterprise": ent,
                           "token": "t" * 20}})
    store = SqliteStore(tmp / "store.db")
    yield tmp, cfg, Registry.load(tmp / "registry.yaml"), QuantitySource(store)
    store.close()


def test_pooled_sum_of_enterprise_days_equals_the_raw_pooled_month(plant):
    tmp, cfg, registry, source = plant
    tz = periods.ZoneInfo("UTC")
    now = DAY1 + 10 * 86400 * S
    pooled = oee.Totals()
    for ent in ("acme", "bolt"):
        for d in range(3, 6):
            agg = aggregate(cfg(ent), registry, source, periods.day_of(date(2026, 11, d)), tz,
                            now)
            pooled.add(Aggregate.model_validate(agg.body()).oee.totals(ent))
    raw = oee.compute(source, registry.equipment_under(registry.root),
                      oee.MetricsQuery.of(cfg("acme").oee, DAY1, DAY1 + 3 * 86400 * S))
    got = oee.report(pooled)
    assert got["counts"] == raw["counts"] and got["times_s"] == raw["times_s"]
    for k in ("availability", "performance", "quality", "oee"):
        assert got[k] == pytest.approx(raw[k], rel=1e-12)
    assert got["equipment"] == 3 * raw["equipment"]  # one per machine and day
    assert len(got["equipment_without_data"]) == 3  # the legacy machine, each day


def test_counts_and_completeness_of_a_month(plant):
    tmp, cfg, registry, source = plant
    now = DAY1 + 10 * 86400 * S
    month = aggregate(cfg("acme"), registry, source, periods.parse("2026-11"),
                      periods.ZoneInfo("UTC"), now)
    assert month.complete is False and month.as_of == "2026-11-13T00:00:00Z"
    eq = month.equipment
    # as of the 13th nothing published within the day before: not networked
    assert (eq.equipment, eq.digital, eq.networked, eq.numerically_controlled,
            eq.key_process, eq.key_process_nc) == (3, 2, 0, 1, 2, 1)
    assert eq.counts().rates() == digitalization.counts(
        registry, registry.get("acme"), {}, now, 86400 * S).rates()
    c = month.completeness
    assert c.digital_equipment == 2 and c.equipment_with_data == 2
    assert c.expected_ns == 2 * 12 * 86400 * S
    assert 0 < c.covered_ns < c.expected_ns  # data stops after three days (and stale_after)
    day = aggregate(cfg("acme"), registry, source, periods.parse("2026-11-04"),
                    periods.ZoneInfo("UTC"), now)
    assert day.equipment.networked == 2 and day.complete
    assert day.completeness.covered_ns == day.completeness.expected_ns


def test_share_leaves_out_what_is_not_shared(plant):
    tmp, cfg, registry, source = plant
    only = cfg("acme").model_copy(update={"federation": cfg("acme").federation.model_copy(
        update={"share": ["equipment"]})})
    agg = aggregate(only, registry, source, periods.parse("2026-11-04"),
                    periods.ZoneInfo("UTC"))
    assert set(agg.body()) >= {"equipment"} and "oee" not in agg.body()
    assert "completeness" not in agg.body()


def test_the_wire_model_refuses_anything_else(plant):
    tmp, cfg, registry, source = plant
    body = aggregate(cfg("bolt"), registry, source, periods.parse("2026-11-04"),
                     periods.ZoneInfo("UTC")).body()
    with pytest.raises(ValueError, match="samples"):
        Aggregate.model_validate({**body, "samples": [[0, 1.0]]})
    with pytest.raises(ValueError, match="ts"):
        Aggregate.model_validate({**body, "oee": {**body["oee"], "ts": [1]}})
    with pytest.raises(ValueError, match="not a day"):
        Aggregate.model_validate({**body, "label": "2026-11"})
    with pytest.raises(ValueError, match="2026-Q4"):
        Aggregate.model_validate({**body, "label": "yesterday"})


def test_the_enterprise_endpoint_shows_what_is_shared(plant):
    tmp, cfg, registry, source = plant
    with TestClient(create_app(cfg("acme"), tmp)) as c:
        doc = c.get("/api/v1/federation").json()
        assert doc["enterprise"] == "acme" and doc["share"] == ["equipment", "oee",
                                                                "completeness"]
        assert "t" * 20 not in str(doc) and doc["uplink"]["queue"]["pending"] >= 0
        r = c.get("/api/v1/federation/aggregates",
                  params={"period": "day", "start": "2026-11-03", "end": "2026-11-05"})
        assert r.status_code == 200, r.text
        got = r.json()["aggregates"]
    assert [a["label"] for a in got] == ["2026-11-03", "2026-11-04", "2026-11-05"]
    want = aggregate(cfg("acme"), registry, source, periods.parse("2026-11-04"),
                     periods.ZoneInfo("UTC")).body()
    assert {k: v for k, v in got[1].items() if k not in ("revision", "as_of")} == \
        {k: v for k, v in want.items() if k not in ("revision", "as_of")}


@st.composite
def totals(draw) -> oee.Totals:
    n = st.integers(0, 10**15)
    parts = draw(st.integers(0, 10**6))
    return oee.Totals(
        state_ns=np.array([draw(n) for _ in range(kernels.N_STATES)], dtype=np.int64),
        total=float(parts), reject=float(draw(st.integers(0, parts))),
        ideal_s=float(draw(st.integers(0, 10**7))),
        stops=np.array([draw(st.integers(0, 10**12)) for _ in range(kernels.N_STOP_STATS)],
                       dtype=np.int64),
        equipment=draw(st.integers(1, 50)),
        without_data=["x"] * draw(st.integers(0, 3)))


@settings(max_examples=60, deadline=None)
@given(st.lists(totals(), min_size=1, max_size=6))
def test_totals_survive_the_wire_and_sum_like_the_originals(parts):
    direct, wired = oee.Totals(), oee.Totals()
    for t in parts:
        direct.add(t)
        wired.add(OeeTotals.model_validate_json(OeeTotals.of(t).model_dump_json()).totals("e"))
    a, b = oee.report(direct), oee.report(wired)
    assert a["times_s"] == b["times_s"] and a["counts"] == b["counts"]
    assert a["oee"] == b["oee"] and a["flags"] == b["flags"]
    assert len(b["equipment_without_data"]) == len(a["equipment_without_data"])
    assert (wired.stops == direct.stops).all()


@pytest.mark.parametrize("label, kind, first, after", [
    ("2026-12-01", "day", date(2026, 12, 1), date(2026, 12, 2)),
    ("2026-12", "month", date(2026, 12, 1), date(2027, 1, 1)),
    ("2026-Q4", "quarter", date(2026, 10, 1), date(2027, 1, 1)),
])
def test_period_labels(label, kind, first, after):
    p = periods.parse(label)
    assert (p.kind, p.first, p.after) == (kind, first, after)
    assert periods.OF[kind](first) == p


def test_a_bad_period_label_says_what_is_expected():
    with pytest.raises(periods.PeriodError, match="2026-Q4"):
        periods.parse("2026-13")


def test_an_enterprise_not_in_the_registry_fails_at_start(plant):
    from shopfloor.config import ConfigError

    tmp, cfg, _, _ = plant
    with pytest.raises(ConfigError, match="'nope' is not an enterprise.*acme"):
        create_app(cfg("nope"), tmp)
