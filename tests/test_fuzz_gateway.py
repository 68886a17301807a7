"""Hypothesis fuzzing of the gateway's input path: 6,000 generated MQTT messages through
the decoder (``Gateway._handle``) and the line-protocol writer. No crash; every message is
either stored or rejected, counted by reason and dead-lettered; no injected measurement,
tag or field reaches InfluxDB (checked line by line with an independent parser, then on a
real InfluxDB 1.x)."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_store_influx import parse_line

from shopfloor.config import parse_config
from shopfloor.contract import MAX_PAYLOAD_BYTES, TAG_RE, DevicePath, DeviceSample
from shopfloor.gateway.config import GatewayConfig
from shopfloor.gateway.service import Gateway
from shopfloor.storage import InfluxConfig
from shopfloor.storage.influx import PATH_TAGS, InfluxV1Writer, to_lines

PER_EXAMPLE = 25
EXAMPLES = 240  # x 25 = 6,000 messages (the suite's time: 40 min on CI)
REASONS = {"bad_json", "bad_schema", "bad_version", "bad_tag", "bad_timestamp", "bad_quality",
           "bad_value", "bad_topic", "oversized", "store_rejected"}
NOW = time.time_ns()
DEV = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")

hostile = st.lists(st.sampled_from(list(' ,="\'\\#\n\t{}*$+/ü€😀') + ["ab", "x", "samples",
                                                                        "value=1", "tag=x"]),
                   min_size=1, max_size=10).map("".join)
tag_names = st.one_of(st.from_regex(TAG_RE, fullmatch=True), hostile, st.text(max_size=20),
                      st.integers(), st.none())
timestamps = st.one_of(
    st.integers(NOW - 10**12, NOW + 10**12),  # around now
    st.integers(-(2**70), 2**70),  # far past / future / out of range
    st.floats(allow_nan=False), st.booleans(), st.text(max_size=5), st.none())
values = st.one_of(
    st.floats(), st.integers(-(2**70), 2**70), st.booleans(), hostile,
    st.text(min_size=250, max_size=300), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.none())
qualities = st.one_of(st.sampled_from(["good", "bad", "uncertain"]), st.text(max_size=6))


@st.composite
def samples(draw: Any) -> dict[str, Any]:
    s = {"tag": draw(tag_names), "ts": draw(timestamps), "v": draw(values),
         "q": draw(qualities)}
    for key in draw(st.sets(st.sampled_from(["tag", "ts", "v", "q"]), max_size=1)):
        del s[key]  # a missing member
    if draw(st.booleans()):
        s[draw(hostile)] = draw(values)  # an extra member
    return s


# valid samples whose tags and string values are as nasty as the contract allows
good_samples = st.fixed_dictionaries({
    "tag": st.from_regex(TAG_RE, fullmatch=True),
    "ts": st.integers(NOW - 10**15, NOW + 10**15),
    "v": st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                   st.integers(-(2**63), 2**63 - 1), st.booleans(), hostile,
                   st.text(max_size=256)),
    "q": st.sampled_from(["good", "bad", "uncertain"])})


@st.composite
def messages(draw: Any) -> tuple[str, bytes]:
    topic = draw(st.one_of(
        st.just(DEV.topic("data")), st.just(DEV.topic("data")),
        st.builds(lambda seg: f"shopfloor/v1/acme/{seg}/machining/line1/cnc-01/data", hostile),
        st.sampled_from([DEV.topic("meta"), "shopfloor/v1/a/b/c/d/data", "x/v1/a/b/c/d/e/data"]),
    ))
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return topic, draw(st.binary(max_size=200))
    doc: Any = {"v": draw(st.sampled_from([1, 1, 1, 2, "1", None])),
                "agent": draw(st.one_of(st.just("edge-1"), hostile, st.integers())),
                "seq": draw(st.one_of(st.integers(0, 10**6), st.integers(-5, -1), st.booleans(),
                                      st.text(max_size=3))),
                "samples": draw(st.one_of(st.lists(samples(), min_size=1, max_size=5),
                                          st.lists(good_samples, min_size=1, max_size=5),
                                          st.lists(good_samples, min_size=1, max_size=5),
                                          st.just([]), st.just({}), st.integers()))}
    if kind >= 5:  # a well-formed envelope on a good topic: the samples decide
        topic = DEV.topic("data")
        doc.update(v=1, agent="edge-1", seq=draw(st.integers(0, 10**6)), samples=draw(
            st.lists(st.one_of(good_samples, good_samples, good_samples, samples()),
                     min_size=1, max_size=5)))
    if kind == 1:
        doc = draw(st.sampled_from([[doc], "text", 1, None]))
    text = json.dumps(doc, allow_nan=True)  # NaN / Infinity literals included
    if kind == 2:
        text = text[:draw(st.integers(0, max(0, len(text) - 1)))]  # truncated
    return topic, text.encode()


class _Info:
    rc = mqtt.MQTT_ERR_SUCCESS


class FakeClient:
    def __init__(self) -> None:
        self.dead: Counter[str] = Counter()

    def publish(self, topic: str, payload: str, qos: int = 0) -> _Info:
        self.dead[topic.rsplit("/", 1)[1]] += 1
        return _Info()


class CheckingWriter:
    """Formats line protocol and checks every line's shape with an independent parser."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.tags: set[str] = set()
        self.failures: list[str] = []  # raising here would look like an outage (retried)

    def write(self, rows: list[DeviceSample]) -> None:
        lines = to_lines(rows)  # LineProtocolError = PermanentWriteError: store_rejected
        try:
            self._check(lines, rows)
        except Exception as exc:  # noqa: BLE001
            self.failures.append(f"{exc!r}: {lines}")
        self.lines.extend(lines)

    def _check(self, lines: list[str], rows: list[DeviceSample]) -> None:
        for line, (device, sample) in zip(lines, rows, strict=True):
            m, tags, fields, ts = parse_line(line)
            assert m == "samples"
            assert set(tags) == {*PATH_TAGS, "tag"}, line
            assert tags["tag"] == sample.tag and all(tags[k] == getattr(device, k)
                                                     for k in PATH_TAGS)
            assert set(fields) in ({"value", "quality"}, {"value_str", "quality"}), line
            assert fields["quality"] in ("good", "bad", "uncertain")
            if "value" in fields:
                assert math.isfinite(fields["value"])
            assert ts == sample.ts and abs(ts - time.time_ns()) < 400 * 86400 * 10**9
            self.tags.add(sample.tag)

    def close(self) -> None:
        pass


def _message(topic: str, payload: bytes, mid: int) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid, topic.encode())
    msg.payload, msg.qos = payload, 1
    return msg


def test_fuzzed_messages_are_stored_or_counted_and_never_inject(influxdb, tmp_path):
    cfg = parse_config({"store": {"embedded": {"path": str(tmp_path / "unused.db")}},
                        "queue_max_messages": 10 * PER_EXAMPLE}, GatewayConfig)
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
        assert len(items) == len(batch)  # rejected ones too (acked in order)
        assert gw._write(items)  # noqa: SLF001
        after = gw.stats()
        stored = sum(1 for it in items if it.rows)
        rejected = sum(after.rejects.values()) - sum(before.rejects.values())
        assert after.messages - before.messages == len(batch)
        assert stored + rejected == len(batch)  # each message stored or counted, once
        assert not writer.failures, writer.failures[:3]
        totals["messages"] += len(batch)
        totals["stored"] += stored

    run()
    stats = gw.stats()
    print(f"\nfuzzed {totals['messages']} messages: stored {totals['stored']}, "
          f"rejected {dict(sorted(stats.rejects.items()))}")
    assert totals["messages"] >= EXAMPLES * PER_EXAMPLE
    assert set(stats.rejects) <= REASONS
    assert dict(client.dead) == stats.rejects  # every reject dead-lettered under its reason
    # both sides exercised: at least 5 % stored (about 7 % are, as the generator draws)
    assert totals["stored"] > totals["messages"] // 20 and len(stats.rejects) >= 7

    # one oversized payload, a reject like any other
    big = json.dumps({"v": 1, "agent": "e", "seq": 1, "samples": [
        {"tag": "t", "ts": NOW, "v": "x" * 200}] * (MAX_PAYLOAD_BYTES // 200)}).encode()
    gw._handle(client, _message(DEV.topic("data"), big, 1))  # type: ignore[arg-type]  # noqa: SLF001
    assert gw.stats().rejects["oversized"] == stats.rejects.get("oversized", 0) + 1

    # what was accepted, written to a real InfluxDB: no other measurement, tag or field
    influx = InfluxV1Writer(InfluxConfig(version=1, url=influxdb.url,
                                         database=influxdb.database))
    rows = []
    while not gw._queue.empty():  # noqa: SLF001
        rows.extend(gw._queue.get_nowait().rows)  # noqa: SLF001
    influx._http.post("/write", params=influx._params,  # noqa: SLF001
                      content="\n".join(writer.lines).encode()).raise_for_status()
    influx.close()

    def show(q: str, col: int = 0) -> set[str]:
        res = influxdb.query(q)["results"][0]
        return {v[col] for s in res.get("series") or [] for v in s["values"]}

    assert show("SHOW MEASUREMENTS") == {"samples"}
    assert show("SHOW TAG KEYS") == {*PATH_TAGS, "tag"}
    assert show("SHOW FIELD KEYS") <= {"value", "value_str", "quality"}
    assert show('SHOW TAG VALUES WITH KEY = "tag"', 1) == writer.tags
