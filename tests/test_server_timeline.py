"""The state timeline (Gantt): intervals agree with the OEE time model and /oee."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.server import kernels as k
from shopfloor.server.timeline import intervals
from tests.test_kernels import state_series
from tests.test_server_api import T0, S, client, iso  # noqa: F401 (fixture)


@st.composite
def calendars(draw):
    n = draw(st.integers(1, 6))
    cal_ts = sorted(draw(st.lists(st.integers(-120, 700), min_size=n, max_size=n)))
    cal_codes = draw(st.lists(st.sampled_from(
        [-1, k.STATE_CODES_NO_SHIFT, k.STATE_CODES_PLANNED_STOP]), min_size=n, max_size=n))
    return np.array(cal_ts, dtype=np.int64), np.array(cal_codes, dtype=np.int64)


@settings(max_examples=400, deadline=None)
@given(state_series(), st.none() | calendars())
def test_intervals_cover_the_window_with_the_kernels_times(case, cal):
    ts, codes, t0, t1, stale = case
    a_ts, a_codes = np.array(ts, dtype=np.int64), np.array(codes, dtype=np.int64)
    got = intervals(a_ts, a_codes, t0, t1, stale, cal)
    if t1 <= t0:
        assert got == []
        return
    assert got[0][0] == t0 and got[-1][1] == t1
    for (_, e, c), (s, _, c2) in zip(got, got[1:], strict=False):
        assert e == s and c != c2  # contiguous, merged
    assert all(s < e for s, e, _ in got)
    per_state = [0] * k.N_STATES
    for s, e, c in got:
        per_state[c] += e - s
    if cal is None:
        assert per_state == k.state_durations_ref(ts, codes, t0, t1, stale)
    else:  # as oee.equipment_totals: staleness explicit, calendar over it
        m_ts, m_codes = k.materialize_stale_ref(ts, codes, stale)
        o_ts, o_codes = k.overlay_ref(m_ts, m_codes, *(x.tolist() for x in cal))
        assert per_state == k.state_durations_ref(o_ts, o_codes, t0, t1, 2**61)


def test_timeline_endpoint_matches_oee_times(client):  # noqa: F811
    line = "acme/plant1/machining/line1"
    params = {"scope": line, "start": iso(T0), "end": iso(T0 + 100 * S)}
    r = client.get("/api/v1/timeline", params=params)
    assert r.status_code == 200, r.text
    doc = r.json()
    by_id = {e["id"]: e["intervals"] for e in doc["equipment"]}
    cnc = by_id[f"{line}/cnc-01"]
    def z(t: int) -> str:
        return iso(T0 + t * S).replace("+00:00", "Z")

    assert [(i["state"], i["start"], i["end"]) for i in cnc] == [
        ("PRODUCING", z(0), z(50)), ("DOWN", z(50), z(60)), ("PLANNED_STOP", z(60), z(70)),
        ("PRODUCING", z(70), z(100))]
    assert [i["state"] for i in by_id[f"{line}/lathe-07"]] == ["OFFLINE"]  # never published
    times = client.get("/api/v1/oee", params={**params, "scope": f"{line}/cnc-01"}).json()
    from datetime import datetime
    spent: dict[str, float] = {}
    for i in cnc:
        d = datetime.fromisoformat(i["end"]) - datetime.fromisoformat(i["start"])
        spent[i["state"]] = spent.get(i["state"], 0) + d.total_seconds()
    assert spent == pytest.approx({s: v for s, v in times["times_s"].items() if v})


@pytest.mark.parametrize("params, status", [
    ({"scope": "nope", "start": "2025-01-01", "end": "2025-01-02"}, 404),
    ({"scope": "demo-cluster", "start": "2025-01-02", "end": "2025-01-01"}, 422),
    ({"scope": "demo-cluster", "start": "yesterday", "end": "2025-01-01"}, 422),
])
def test_timeline_bad_requests(client, params, status):  # noqa: F811
    assert client.get("/api/v1/timeline", params=params).status_code == status
