"""The gateway's Sparkplug host (unit): births and aliases per node, data -> mapped samples,
deaths -> OFFLINE, and every kind of bad input counted and handled (reject or rebirth)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shopfloor.config import parse_config
from shopfloor.contract import DevicePath, Quality
from shopfloor.gateway.sparkplug.config import SparkplugHostConfig
from shopfloor.gateway.sparkplug.host import SparkplugHost
from shopfloor.gateway.sparkplug.mapping import tag_name
from shopfloor.sparkplug.payload import DT, SparkplugError, decode, set_quality, wants_rebirth
from shopfloor.sparkplug.schema import Payload

T0 = time.time_ns() // 1_000_000 - 60_000  # ms
CNC = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")
MAPPING = {"rebirth_min_interval_s": 60, "devices": [
    {"group": "Plant1", "node": "edge-*", "device": "CNC01", "asset": str(CNC.asset_id),
     "signals": {"state": {"metric": "Status/Mode", "map": {1: "PRODUCING", 2: "IDLE"}},
                 "part_count": {"metric": "Counters/Total"}}},
    {"group": "Plant1", "node": "edge-*", "device": "*",
     "asset": "acme/plant1/{node}/line9/{device}"}]}


def host(**extra: Any) -> SparkplugHost:
    return SparkplugHost(parse_config({**MAPPING, **extra}, SparkplugHostConfig))


def payload(metrics: list[dict[str, Any]], seq: int | None = None, ts: int = T0) -> bytes:
    p = Payload(timestamp=ts)
    if seq is not None:
        p.seq = seq
    for m in metrics:
        m = dict(m)
        quality = m.pop("quality", None)
        pm = p.metrics.add(**m)
        if quality is not None:
            set_quality(pm, quality)
    return p.SerializeToString()


NBIRTH = payload([{"name": "bdSeq", "datatype": DT.Int64, "long_value": 3},
                  {"name": "Node Control/Rebirth", "datatype": DT.Boolean,
                   "boolean_value": False, "alias": 0}], seq=0)
DBIRTH = payload([
    {"name": "Status/Mode", "alias": 1, "datatype": DT.Int32, "int_value": 2, "timestamp": T0},
    {"name": "Counters/Total", "alias": 2, "datatype": DT.UInt32, "int_value": 10},
    {"name": "Spindle Load", "alias": 3, "datatype": DT.Float, "float_value": 40.0}], seq=1)


def born(h: SparkplugHost, node: str = "edge-1") -> None:
    assert h.handle(f"spBv1.0/Plant1/NBIRTH/{node}", NBIRTH, time.time_ns()) == []
    h.handle(f"spBv1.0/Plant1/DBIRTH/{node}/CNC01", DBIRTH, time.time_ns())


def ddata(h: SparkplugHost, metrics: list[dict[str, Any]], seq: int) -> list:
    return h.handle("spBv1.0/Plant1/DDATA/edge-1/CNC01", payload(metrics, seq), time.time_ns())


def test_births_and_data_by_alias_become_mapped_samples():
    h = host()
    h.handle("spBv1.0/Plant1/NBIRTH/edge-1", NBIRTH, 0)
    rows = h.handle("spBv1.0/Plant1/DBIRTH/edge-1/CNC01", DBIRTH, time.time_ns())
    got = {s.tag: (s.value, s.ts) for _, s in rows}
    assert {d for d, _ in rows} == {CNC}
    assert got == {"state": ("IDLE", T0 * 10**6), "part_count": (10, T0 * 10**6),
                   "Spindle_Load": (40.0, T0 * 10**6)}
    rows = ddata(h, [{"alias": 1, "int_value": 1, "timestamp": T0 + 5},
                     {"alias": 2, "int_value": 11, "timestamp": T0 + 6,
                      "quality": Quality.UNCERTAIN},
                     {"alias": 1, "int_value": 7, "timestamp": T0 + 7},
                     {"alias": 3, "is_null": True}], seq=2)
    assert [(s.tag, s.value, s.quality, s.ts) for _, s in rows] == [
        ("state", "PRODUCING", Quality.GOOD, (T0 + 5) * 10**6),
        ("part_count", 11, Quality.UNCERTAIN, (T0 + 6) * 10**6),
        ("state", "UNKNOWN:7", Quality.UNCERTAIN, (T0 + 7) * 10**6)]
    assert h.counts["births"] == 2 and not h.take_rebirths()


def test_a_glob_mapping_names_the_asset_and_keeps_our_signal_names():
    h = host()
    h.handle("spBv1.0/Plant1/NBIRTH/edge-2", NBIRTH, 0)
    rows = h.handle("spBv1.0/Plant1/DBIRTH/edge-2/press-7", payload([
        {"name": "state", "alias": 9, "datatype": DT.String, "string_value": "DOWN"},
        {"name": "reject_count", "alias": 10, "datatype": DT.UInt64, "long_value": 2}], 1),
        time.time_ns())
    assert {(d.asset_id, s.tag, s.value) for d, s in rows} == {
        ("acme/plant1/edge-2/line9/press-7", "state", "DOWN"),
        ("acme/plant1/edge-2/line9/press-7", "reject_count", 2)}


def reject(h: SparkplugHost, topic: str, body: bytes) -> str:
    with pytest.raises(SparkplugError) as exc:
        h.handle(topic, body, time.time_ns())
    return exc.value.reason


def test_data_before_birth_is_rejected_and_asks_for_a_rebirth_once_per_interval():
    h = host()
    topic = "spBv1.0/Plant1/DDATA/edge-1/CNC01"
    assert reject(h, topic, payload([{"alias": 1, "int_value": 1}], 5)) == "sp_no_birth"
    [(ncmd, body)] = h.take_rebirths()
    assert ncmd == "spBv1.0/Plant1/NCMD/edge-1" and wants_rebirth(decode(body))
    assert reject(h, topic, payload([{"alias": 1, "int_value": 1}], 6)) == "sp_no_birth"
    assert h.take_rebirths() == [] and h.counts["rebirth_requests"] == 1
    h.handle("spBv1.0/Plant1/NBIRTH/edge-1", NBIRTH, 0)  # node born, device not yet
    assert reject(h, topic, payload([{"alias": 1, "int_value": 1}], 1)) == "sp_no_birth"


def test_unknown_alias_collision_seq_jump_and_malformed_payloads():
    h = host(rebirth_min_interval_s=0)
    born(h)
    assert reject(h, "spBv1.0/Plant1/DDATA/edge-1/CNC01",
                  payload([{"alias": 99, "int_value": 1}], 2)) == "sp_unknown_alias"
    assert len(h.take_rebirths()) == 1
    # the node's own alias (0) is no alias of the device
    assert reject(h, "spBv1.0/Plant1/DDATA/edge-1/CNC01",
                  payload([{"alias": 0, "boolean_value": True}], 3)) == "sp_unknown_alias"
    h.take_rebirths()
    clash = payload([{"name": "a", "alias": 1, "datatype": DT.Int32, "int_value": 1}], 4)
    assert reject(h, "spBv1.0/Plant1/DBIRTH/edge-1/other", clash) == "sp_alias_collision"
    rows = ddata(h, [{"alias": 2, "int_value": 12}], seq=9)  # 5..8 lost: a gap
    assert [s.value for _, s in rows] == [12]  # what arrived is kept...
    assert h.counts["seq_gaps"] == 1 and len(h.take_rebirths()) == 1  # ...and a rebirth asked
    assert ddata(h, [{"alias": 2, "int_value": 13}], seq=10) and not h.take_rebirths()
    for body in (b"\xff\xff\xff", b"\x0a\x05abc"):
        assert reject(h, "spBv1.0/Plant1/DDATA/edge-1/CNC01", body) == "sp_bad_payload"
    assert reject(h, "spBv1.0/Plant1/DDATA/edge-1", b"") == "sp_bad_topic"


def test_unmapped_devices_are_unknown_and_accept_applies():
    h = SparkplugHost(parse_config(MAPPING, SparkplugHostConfig),
                      accept=lambda d: d.area != "edge-3")
    h.handle("spBv1.0/Plant1/NBIRTH/edge-3", NBIRTH, 0)
    assert reject(h, "spBv1.0/Plant1/DBIRTH/edge-3/m1", DBIRTH) == "unknown_device"
    h.handle("spBv1.0/Other/NBIRTH/n", NBIRTH, 0)
    assert reject(h, "spBv1.0/Other/DBIRTH/n/d", DBIRTH) == "unknown_device"
    # and no rebirth storm: its births are known, its data is just not taken
    assert reject(h, "spBv1.0/Other/DDATA/n/d", payload([{"alias": 1, "int_value": 1}], 2)) \
        == "unknown_device"
    assert h.take_rebirths() == []


def test_deaths_mark_the_devices_offline_at_the_deaths_time():
    h = host()
    born(h)
    death = payload([{"name": "bdSeq", "datatype": DT.Int64, "long_value": 2}], ts=T0 + 100)
    assert h.handle("spBv1.0/Plant1/NDEATH/edge-1", death, time.time_ns()) == []  # stale
    assert h.counts["stale_deaths"] == 1
    death = payload([{"name": "bdSeq", "datatype": DT.Int64, "long_value": 3}], ts=T0 + 100)
    rows = h.handle("spBv1.0/Plant1/NDEATH/edge-1", death, time.time_ns())
    assert [(d, s.tag, s.value, s.quality, s.ts) for d, s in rows] == [
        (CNC, "state", "OFFLINE", Quality.BAD, (T0 + 100) * 10**6)]
    assert reject(h, "spBv1.0/Plant1/DDATA/edge-1/CNC01",
                  payload([{"alias": 2, "int_value": 1}], 3)) == "sp_no_birth"
    # a will stamped when its node connected (before its last message): the arrival time
    born(h)
    now = time.time_ns()
    will = payload([{"name": "bdSeq", "datatype": DT.Int64, "long_value": 3}], ts=T0 - 5000)
    [(_, s)] = h.handle("spBv1.0/Plant1/NDEATH/edge-1", will, now)
    assert s.ts == now
    born(h)
    [(_, s)] = h.handle("spBv1.0/Plant1/DDEATH/edge-1/CNC01", payload([], 2, T0 + 200), now)
    assert (s.value, s.ts) == ("OFFLINE", (T0 + 200) * 10**6)
    assert reject(h, "spBv1.0/Plant1/DDATA/edge-1/CNC01",
                  payload([{"alias": 2, "int_value": 1}], 3)) == "sp_no_birth"


def test_births_survive_a_restart_with_a_state_path(tmp_path):
    h = host(state_path=str(tmp_path / "births.db"))
    born(h)
    h.close()
    again = host(state_path=str(tmp_path / "births.db"))
    assert [s.value for _, s in ddata(again, [{"alias": 2, "int_value": 5}], seq=7)] == [5]
    assert again.take_rebirths() == []
    assert host().handle("spBv1.0/Plant1/NBIRTH/edge-1", NBIRTH, 0) == []  # memory only: new


def test_tag_names_of_metrics():
    assert tag_name("Inputs/Temp (°C)") == "Inputs/Temp___C_"
    assert tag_name("-x") == "_-x" and len(tag_name("a" * 300)) == 128
