"""An edge whose clock steps an hour back, then forward, mid-run (issue 17, point 6), on
a real Mosquitto: ordering still from seqs (no gap, no reject), the gateway records
the skew per agent and device (``clock_skew_s`` markers, stats), and OEE over the
windows the misplaced samples land in is flagged ``clock_skew``, not silently shifted."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime

import pytest
import yaml
from fastapi.testclient import TestClient
from test_gateway import Publisher, gateway_cfg, wait_until

from shopfloor.contract import CLOCK_SKEW_TAG, Batch, DevicePath, Sample
from shopfloor.gateway.clock import ClockWatch
from shopfloor.gateway.service import Gateway
from shopfloor.server.app import create_app
from shopfloor.server.config import ServerConfig
from shopfloor.storage.sqlite import SqliteStore

S = 10**9
HOUR = 3600 * S
CNC = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")
REGISTRY = {"cluster": {"id": "c"}, "enterprises": [{"id": "acme", "sites": [{
    "id": "plant1", "workshops": [{"id": "machining", "lines": [{"id": "line1", "equipment": [
        {"id": "cnc-01", "ideal_cycle_time_s": 0.05}]}]}]}]}]}


def rows(ts: int) -> list:
    return [(CNC, Sample("part_count", ts, 1))]


def test_clock_watch_rules():
    w = ClockWatch(60)
    seqs = itertools.count()
    now = 1_800_000_000 * S
    assert w.observe("e", next(seqs), CNC, rows(now - S), now) == []
    assert w.observe("e", next(seqs), CNC, rows(now), now + S) == []  # in step
    # a backlog delivered late: old source times, but arriving long after the last batch
    assert w.observe("e", next(seqs), CNC, rows(now + S), now + 2 * HOUR) == []
    assert w.observe("e", next(seqs), CNC, rows(now + 2 * S), now + 2 * HOUR + 1) == []
    live = now + 2 * HOUR
    assert w.observe("e", next(seqs), CNC, rows(live), live + S // 2) == []  # live again
    # an hour back between two batches that arrived half a second apart
    t = now + 2 * HOUR + S
    (marker,) = w.observe("e", next(seqs), CNC, rows(t - HOUR), t)
    assert marker[1].tag == CLOCK_SKEW_TAG and marker[1].ts == t - HOUR
    assert marker[1].value == pytest.approx(-3600, abs=3) and w.offsets()["e"] < -3590
    # still off: no new marker
    assert w.observe("e", next(seqs), CNC, rows(t - HOUR + S), t + S) == []
    # put right: flagged stay where the samples landed and the real time they left
    back = w.observe("e", next(seqs), CNC, rows(t + 2 * S), t + 2 * S)
    off = marker[1].value
    assert [(s.ts, s.value) for _, s in back] == [
        (t - HOUR, off), (t - HOUR + S + 1, 0), (now + 2 * HOUR + 1, off), (t + 2 * S, 0)]
    assert w.offsets() == {}
    (ahead,) = w.observe("e", next(seqs), CNC, rows(t + 3 * S + HOUR), t + 3 * S)  # an hour ahead
    assert ahead[1].value == pytest.approx(3600, abs=1) and ahead[1].ts == t + 2 * S + 1
    again = w.observe("e", next(seqs), CNC, rows(t + 4 * S), t + 4 * S)
    off = ahead[1].value
    assert [(s.ts, s.value) for _, s in again] == [
        (t + 2 * S + 1, off), (t + 4 * S, 0), (t + 3 * S + HOUR, off), (t + 3 * S + HOUR + 1, 0)]
    assert w.steps == 4
    # a replay (an older seq) an hour old, between live batches: nothing
    assert w.observe("e", 3, CNC, rows(t + 5 * S - HOUR), t + 5 * S) == []
    assert w.observe("e", next(seqs), CNC, rows(t + 6 * S), t + 6 * S) == [] and w.steps == 4


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / S, UTC).isoformat()


@pytest.mark.timeout(120)
def test_a_clock_step_is_flagged_not_shifted(mosquitto, tmp_path):
    gw = Gateway(gateway_cfg(mosquitto, tmp_path))
    gw.start()
    pub = Publisher(mosquitto.port)
    seq, count = 0, 0
    phases: dict[str, tuple[int, int]] = {}  # phase -> (first source ts, real time)

    def run(phase: str, offset_ns: int, n: int = 10) -> None:
        nonlocal seq, count
        for i in range(n):
            real = time.time_ns()
            samples = [Sample("part_count", real + offset_ns, count)]
            if seq == 0:
                samples.insert(0, Sample("state", real - 10 * S, "PRODUCING"))
            if i == 0:
                phases[phase] = (real + offset_ns, real)
            pub.publish(CNC.topic("data"), Batch("edge-1", seq, tuple(samples)).encode())
            seq, count = seq + 1, count + 1
            time.sleep(0.05)

    try:
        assert gw.wait_ready(10)
        run("in step", 0)
        run("an hour back", -HOUR)
        wait_until(lambda: gw.stats().messages_done == seq, what="settled")
        assert gw.stats().clock_offsets_s["edge-1"] == pytest.approx(-3600, abs=5)
        run("put right", 0)
        run("an hour ahead", HOUR)
        run("in step again", 0)
        wait_until(lambda: gw.stats().messages_done == seq, what="settled")
        stats = gw.stats()
        assert stats.rejects == {} and stats.clock_steps == 4 and stats.clock_offsets_s == {}
    finally:
        pub.close()
        gw.stop()
    with SqliteStore(tmp_path / "store.db") as store:
        assert store.seq_ranges() == {"edge-1": [(0, seq - 1)]}  # order and gaps: by seq
        markers = store.read(CNC, CLOCK_SKEW_TAG, 0, 2**62)
        assert [round(v / 60) for v in markers.value] == [-60, 0, -60, 0, 60, 0, 60, 0]
    assert markers.ts[0] == phases["an hour back"][0]
    assert markers.ts[6] == phases["an hour ahead"][0]  # where the ahead samples landed
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(REGISTRY))
    cfg = ServerConfig.model_validate({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(tmp_path / "store.db")}},
        "oee": {"stale_after_s": 7200}})

    def flags(t0: int, t1: int) -> tuple[list[str], list[str]]:
        doc = c.get("/api/v1/oee", params={"scope": CNC.asset_id, "start": iso(t0),
                                            "end": iso(t1)}).json()
        return doc["flags"], doc["equipment_with_clock_skew"]

    back, ahead = phases["an hour back"], phases["an hour ahead"]
    with TestClient(create_app(cfg, tmp_path)) as c:
        # where the misplaced samples landed (an hour early), and the real time they left
        got, which = flags(back[0] - 60 * S, back[0] + 60 * S)
        assert "clock_skew" in got and which == [CNC.asset_id]
        assert "clock_skew" in flags(back[1], phases["put right"][1])[0]
        # the hour ahead: from the step on (where its samples landed, an hour from now,
        # cannot be asked for yet: windows end now; its marker is checked above)
        assert "clock_skew" in flags(ahead[1], ahead[1] + S)[0]
        # before the first step and after the last, nothing
        first = phases["in step"][1]
        got, which = flags(back[0] - 2 * HOUR, back[0] - HOUR)
        assert "clock_skew" not in got and which == []
        assert "clock_skew" not in flags(first, first + S // 4)[0]
        last = phases["in step again"][1]
        assert "clock_skew" not in flags(last + S, last + 2 * S)[0]


def test_windows_flagged_where_a_nonzero_marker_is_in_force(tmp_path):
    from shopfloor.server.clock import clock_skew_by_window
    from shopfloor.server.registry import Registry

    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(REGISTRY))
    asset = Registry.load(tmp_path / "registry.yaml").get(CNC.asset_id)
    assert asset is not None
    with SqliteStore(tmp_path / "s.db") as store:
        # off from 100 to 200 and from 300 on (a marker at exactly 300)
        store.write([(CNC, Sample(CLOCK_SKEW_TAG, ts * S, v, "uncertain"))
                     for ts, v in ((100, -3600.0), (200, 0.0), (300, 60.5))])
        windows = [(0, 50), (50, 100), (50, 101), (150, 160), (200, 300), (199, 201),
                   (300, 301), (400, 500)]
        got = clock_skew_by_window(store, [asset], [a * S for a, _ in windows],
                                   [b * S for _, b in windows])
    assert [bool(ids) for ids in got] == [False, False, True, True, False, True, True, True]
    assert got[2] == [CNC.asset_id]
