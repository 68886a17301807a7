"""Hypothesis fuzzing of the gateway's Sparkplug input (as test_fuzz_gateway.py does for the
JSON contract): 6,000 generated messages (random bytes, truncated payloads, births and
data with hostile names, aliases, datatypes, values, seqs and topics) through
``Gateway._handle``. No crash; every message is stored, rejected (counted by reason and
dead-lettered) or a birth/death/command that stores nothing; every stored row is a valid
sample whose line protocol an independent parser accepts."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_gateway import CheckingWriter, _message, hostile

from shopfloor.config import parse_config
from shopfloor.gateway.config import GatewayConfig
from shopfloor.gateway.service import Gateway
from shopfloor.sparkplug.payload import DATATYPES, DT, set_value
from shopfloor.sparkplug.schema import Payload

PER_EXAMPLE = 25
EXAMPLES = 240  # x 25 = 6,000 messages (the suite's time: 40 min on CI)
NOW_MS = time.time_ns() // 10**6
REASONS = {"sp_bad_topic", "sp_bad_payload", "sp_bad_birth", "sp_no_birth", "sp_unknown_alias",
           "sp_alias_collision", "sp_bad_asset", "unknown_device", "oversized", "bad_timestamp",
           "store_rejected"}

ids = st.one_of(st.sampled_from(["Plant1", "edge-1", "edge-2", "CNC01", "M 2"]), hostile)
kinds = st.sampled_from(["NBIRTH", "DBIRTH", "NDATA", "DDATA", "NDEATH", "DDEATH", "NCMD",
                         "DCMD", "STATE", "XDATA"])
names = st.one_of(st.sampled_from(["state", "part_count", "Status/Mode", "bdSeq",
                                   "Node Control/Rebirth", "Counters/Total", ""]),
                  hostile, st.text(max_size=300))


@st.composite
def topics(draw: Any) -> str:
    kind = draw(kinds)
    group, node = draw(st.sampled_from(["Plant1", "Plant1", "Other"])), \
        draw(st.sampled_from(["edge-1", "edge-2", "edge-1"]))
    if draw(st.integers(0, 9)) == 0:
        group, node = draw(ids), draw(ids)
    device = f"/{draw(st.sampled_from(['CNC01', 'M2', 'CNC01']))}" \
        if kind in ("DBIRTH", "DDATA", "DDEATH", "DCMD") or draw(st.integers(0, 20)) == 0 \
        else ""
    return f"spBv1.0/{group}/{kind}/{node}{device}"


@st.composite
def metrics(draw: Any) -> dict[str, Any]:
    m: dict[str, Any] = {}
    if draw(st.booleans()):
        m["name"] = draw(names)
    if draw(st.booleans()):
        m["alias"] = draw(st.one_of(st.integers(0, 12), st.integers(0, 2**64 - 1)))
    if draw(st.booleans()):
        m["timestamp"] = draw(st.one_of(st.integers(NOW_MS - 10**9, NOW_MS + 10**9),
                                        st.integers(0, 2**64 - 1)))
    m["datatype"] = draw(st.one_of(st.sampled_from(sorted(DATATYPES.values())),
                                   st.integers(0, 2**32 - 1)))
    field = draw(st.sampled_from(["int_value", "long_value", "float_value", "double_value",
                                  "boolean_value", "string_value", "bytes_value", None]))
    value = {"int_value": st.integers(0, 2**32 - 1), "long_value": st.integers(0, 2**64 - 1),
             "float_value": st.floats(width=32), "double_value": st.floats(),
             "boolean_value": st.booleans(), "string_value": st.text(max_size=400),
             "bytes_value": st.binary(max_size=20), None: st.none()}[field]
    if field is not None:
        m[field] = draw(value)
    for flag in ("is_null", "is_historical"):
        if draw(st.integers(0, 5)) == 0:
            m[flag] = True
    return m


LIVE = [("state", 1, DT.String), ("part_count", 2, DT.UInt32), ("Spindle/Load", 3, DT.Double)]
LIVE_VALUES = {DT.String: st.sampled_from(["PRODUCING", "IDLE", "Running", ""]),
               DT.UInt32: st.integers(0, 2**32 - 1), DT.Double: st.floats()}


@st.composite
def live(draw: Any) -> tuple[str, bytes]:
    """A well-formed birth or data message of node Plant1/edge-1 (device CNC01 or the node
    itself), with seqs that mostly follow on: what keeps sessions alive between the
    hostile messages, so data by alias is stored as well as rejected."""
    kind = draw(st.sampled_from(["NBIRTH", "DBIRTH", "DDATA", "DDATA", "DDATA", "NDATA"]))
    device = "/CNC01" if kind[0] == "D" else ""
    p = Payload(timestamp=NOW_MS, seq=draw(st.sampled_from([0, 1, 2, 3, 200])))
    for name, alias, dt in draw(st.lists(st.sampled_from(LIVE), min_size=1, max_size=3,
                                         unique=True)):
        m = p.metrics.add(alias=alias, datatype=dt,
                          timestamp=NOW_MS - draw(st.integers(0, 10**6)))
        if kind.endswith("BIRTH"):
            m.name = name
        set_value(m, dt, draw(LIVE_VALUES[dt]))
    return f"spBv1.0/Plant1/{kind}/edge-1{device}", p.SerializeToString()


@st.composite
def messages(draw: Any) -> tuple[str, bytes]:
    if draw(st.integers(0, 2)) == 0:
        return draw(live())
    topic = draw(topics())
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return topic, draw(st.binary(max_size=200))
    p = Payload()
    if draw(st.integers(0, 6)):
        p.timestamp = draw(st.integers(0, 2**64 - 1)) if kind == 1 else NOW_MS
    if draw(st.integers(0, 6)):
        p.seq = draw(st.integers(0, 300))
    for m in draw(st.lists(metrics(), max_size=6)):
        pm = p.metrics.add(**m)
        if draw(st.integers(0, 4)) == 0:
            pm.properties.keys.append(draw(st.sampled_from(["Quality", "engUnit", "x"])))
            pm.properties.values.add(type=3, int_value=draw(st.integers(0, 2**32 - 1)))
    raw = p.SerializeToString()
    if kind == 2:
        raw = raw[:draw(st.integers(0, max(0, len(raw) - 1)))]  # truncated
    return topic, raw


class FakeClient:
    def __init__(self) -> None:
        self.dead: Counter[str] = Counter()
        self.ncmds = 0

    def publish(self, topic: str, payload: Any, qos: int = 0) -> Any:
        if "/NCMD/" in topic:
            self.ncmds += 1
        else:
            self.dead[topic.rsplit("/", 1)[1]] += 1
        return type("Info", (), {"rc": mqtt.MQTT_ERR_SUCCESS})()


def test_fuzzed_sparkplug_messages_are_stored_counted_or_control(tmp_path):
    cfg = parse_config({
        "store": {"embedded": {"path": str(tmp_path / "unused.db")}},
        "queue_max_messages": 10 * PER_EXAMPLE,
        "sparkplug": {"rebirth_min_interval_s": 0, "devices": [
            {"group": "Plant1", "node": "*", "device": "*", "asset": "acme/p1/a/{node}/{device}"},
            {"group": "Plant1", "node": "*", "asset": "acme/p1/a/{node}/node"}]}},
        GatewayConfig)
    writer = CheckingWriter()
    gw = Gateway(cfg, writers=[writer])
    client = FakeClient()
    gw._client = client  # type: ignore[assignment]  # noqa: SLF001 - no network here
    totals: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(messages(), min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def run(batch: list[tuple[str, bytes]]) -> None:
        before = gw.stats()
        for i, (topic, payload) in enumerate(batch):
            gw._handle(client, _message(topic, payload, i + 1))  # type: ignore[arg-type]  # noqa: SLF001
        items = []
        while not gw._queue.empty():  # noqa: SLF001
            items.append(gw._queue.get_nowait())  # noqa: SLF001
        assert len(items) == len(batch)
        assert gw._write(items)  # noqa: SLF001
        after = gw.stats()
        stored = sum(1 for it in items if it.rows)
        rejected = sum(after.rejects.values()) - sum(before.rejects.values())
        assert stored + rejected <= len(batch)  # the rest: births, deaths, commands
        assert not writer.failures, writer.failures[:3]
        totals["messages"] += len(batch)
        totals["stored"] += stored
        totals["control"] += len(batch) - stored - rejected

    run()
    stats = gw.stats()
    print(f"\nfuzzed {totals['messages']} Sparkplug messages: stored {totals['stored']}, "
          f"births/deaths/commands {totals['control']}, rejected "
          f"{dict(sorted(stats.rejects.items()))}, host {stats.sparkplug}, "
          f"rebirths asked {client.ncmds}")
    assert totals["messages"] >= EXAMPLES * PER_EXAMPLE
    assert set(stats.rejects) <= REASONS, set(stats.rejects) - REASONS
    assert dict(client.dead) == stats.rejects
    assert totals["stored"] > 300 and totals["control"] > 300 and len(stats.rejects) >= 5
    assert stats.sparkplug["rebirth_requests"] == client.ncmds > 0
