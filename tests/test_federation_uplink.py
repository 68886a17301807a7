"""The enterprise's uplink (issue 16): the outbox keeps what the cluster has not
acknowledged, across an outage and a restart, and queues a period again only when its
figures change. The cluster here is the real app, in process; the outage a transport that
cannot connect."""

from __future__ import annotations

import logging
from datetime import datetime

import httpx
import pytest
from fastapi.testclient import TestClient

from shopfloor.server.federation import periods
from shopfloor.server.federation.aggregates import Aggregate
from shopfloor.server.federation.cluster import create_cluster_app
from shopfloor.server.federation.config import ClusterConfig, FederationConfig
from shopfloor.server.federation.uplink import Outbox, Uplink
from shopfloor.times import datetime_ns, iso

TOKEN = "acme-token-0123456789"


def agg(label: str, revision: int, parts: int) -> Aggregate:
    p = periods.parse(label)
    t0, t1 = p.bounds(periods.ZoneInfo("UTC"))
    return Aggregate.model_validate({
        "enterprise": "acme", "name": "Acme", "period": p.kind, "label": label,
        "start": iso(t0), "end": iso(t1), "as_of": iso(t1), "complete": True,
        "revision": revision, "equipment": {
            "equipment": 3, "digital": 2, "networked": 2, "numerically_controlled": 1,
            "key_process": 2, "key_process_nc": 1},
        "oee": {"state_ns": {"PRODUCING": 3600 * 10**9}, "stops": {}, "total": parts,
                "reject": 0, "ideal_s": parts, "startup_reject": 0, "reject_ideal_s": 0,
                "startup_reject_ideal_s": 0, "parts_without_ict": 0, "equipment": 3,
                "equipment_without_data": 1, "equipment_without_cycle_time": 0,
                "equipment_with_clock_skew": 0}})


class Down(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)


@pytest.fixture
def cluster(tmp_path):
    cfg = ClusterConfig.model_validate({"database": str(tmp_path / "cluster.db"),
                                        "enterprises": [{"id": "acme", "token": TOKEN}]})
    app = create_cluster_app(cfg)
    with TestClient(app) as c:
        yield c, app.state.cluster.store


def fed(token: str = TOKEN) -> FederationConfig:
    return FederationConfig(cluster_url="http://testserver", enterprise="acme", token=token)


def test_outbox_keeps_one_row_per_period_and_skips_what_was_delivered(tmp_path):
    box = Outbox(tmp_path / "o.db")
    assert box.put(agg("2026-11-03", 1, 10)) and not box.put(agg("2026-11-03", 2, 10))
    assert box.put(agg("2026-11-03", 3, 12))  # new figures: replaces the waiting one
    assert [(p, lbl, r) for p, lbl, r, _ in box.waiting()] == [("day", "2026-11-03", 3)]
    box.delivered("day", "2026-11-03", 1)  # an acknowledgement of an older revision
    assert box.counts() == {"pending": 1, "delivered": 0}
    box.delivered("day", "2026-11-03", 3)
    assert box.counts() == {"pending": 0, "delivered": 1}
    assert not box.put(agg("2026-11-03", 4, 12))  # the cluster has these figures
    box.close()


def test_an_outage_keeps_the_queue_and_the_next_round_delivers_each_once(cluster, tmp_path):
    client, store = cluster
    days = [agg(f"2026-11-0{d}", 100 + d, 10 * d) for d in (3, 4, 5)]
    down = Uplink(fed(), Outbox(tmp_path / "o.db"), lambda _days: days, transport=Down())
    assert down.round() == 0 and "unreachable" in down.status.last_error
    assert down.outbox.counts()["pending"] == 3
    down.outbox.close()  # the enterprise server restarts while the cluster is away
    box = Outbox(tmp_path / "o.db")
    up = Uplink(fed(), box, lambda _days: days, transport=client._transport)
    assert up.round() == 3 and up.status.last_error is None
    assert up.round() == 0  # nothing changed: nothing sent
    assert box.counts() == {"pending": 0, "delivered": 3}
    days[1] = agg("2026-11-04", 200, 99)  # late data changed a day: a new revision
    assert up.round() == 1
    receipts = store.receipts()
    assert [r[2] for r in receipts].count("2026-11-04") == 2
    assert {r[4] for r in receipts} == {"new", "replaced"}
    held = store.get("day", ["2026-11-03", "2026-11-04", "2026-11-05"])["acme"]
    assert held["2026-11-04"].revision == 200 and held["2026-11-04"].oee.total == 99
    assert len(held) == 3


def test_a_refused_credential_keeps_the_queue_and_is_logged_without_it(cluster, tmp_path,
                                                                         caplog):
    client, store = cluster
    caplog.set_level(logging.INFO)
    bad = "not-the-token-0123456789"
    up = Uplink(fed(bad), Outbox(tmp_path / "o.db"), lambda _days: [agg("2026-11-03", 1, 5)],
                transport=client._transport)
    assert up.round() == 0 and "HTTP 401" in up.status.last_error
    assert up.outbox.counts()["pending"] == 1 and store.receipts() == []
    assert "refused" in caplog.text and bad not in caplog.text and TOKEN not in caplog.text


def test_periods_covering_a_span():
    tz = periods.ZoneInfo("Asia/Shanghai")
    t0 = datetime_ns(datetime(2026, 11, 29, 20))  # 04:00 on the 30th in Shanghai
    t1 = datetime_ns(datetime(2026, 12, 1, 3))
    assert [p.label for p in periods.covering("day", t0, t1, tz)] == [
        "2026-11-30", "2026-12-01"]
    assert [p.label for p in periods.covering("month", t0, t1, tz)] == ["2026-11", "2026-12"]


def test_a_rejected_aggregate_waits_but_does_not_hold_up_the_others(tmp_path):
    def answer(request: httpx.Request) -> httpx.Response:
        rejected = b'"2026-11-03"' in request.content
        return httpx.Response(422 if rejected else 200, json={})
    days = [agg(f"2026-11-0{d}", d, d) for d in (3, 4)]
    up = Uplink(fed(), Outbox(tmp_path / "o.db"), lambda _days: days,
                transport=httpx.MockTransport(answer))
    assert up.round() == 1 and "HTTP 422 to 2026-11-03" in up.status.last_error
    assert [w[1] for w in up.outbox.waiting()] == ["2026-11-03"]
