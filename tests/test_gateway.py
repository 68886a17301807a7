"""The gateway on a real Mosquitto: decode, batch, store, ack after write, dead-letter."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from shopfloor.config import ConfigError, load_config, parse_config
from shopfloor.contract import (
    DEAD_LETTER_TOPIC,
    Batch,
    ContractError,
    DevicePath,
    DeviceSample,
    Sample,
    decode_message,
)
from shopfloor.gateway.config import GatewayConfig
from shopfloor.gateway.service import Gateway
from shopfloor.storage import MemoryLedger, PermanentWriteError
from shopfloor.storage.sqlite import SqliteStore

SAMPLE_YAML = Path(__file__).parent.parent / "gateway" / "gateway.sample.yaml"
DEVICES = [DevicePath("acme", "plant1", "machining", "line1", f"m{i}") for i in range(3)]


def wait_until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        time.sleep(0.02)


def gateway_cfg(broker, tmp_path: Path, **over) -> GatewayConfig:
    doc = {"mqtt": {"host": "127.0.0.1", "port": broker.port},
           "client_id": "gw-test", "batch": {"max_samples": 500, "max_interval_s": 0.05},
           "stats_interval_s": 1, "drain_timeout_s": 5,
           "store": {"embedded": {"path": str(tmp_path / "store.db")}}}
    doc.update(over)
    return parse_config(doc, GatewayConfig)


class Publisher:
    def __init__(self, port: int, watch: str | None = None):
        self.received: list[mqtt.MQTTMessage] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_message = lambda _c, _u, m: self.received.append(m)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if watch:
            subscribed = threading.Event()
            self.client.on_subscribe = lambda *_: subscribed.set()
            self.client.subscribe(watch, qos=1)
            assert subscribed.wait(10)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def batches(n_batches: int, per_batch: int, seq0: int = 0) -> list[tuple[str, bytes, int]]:
    """(topic, payload, samples) of valid data messages, timestamps around now."""
    t0 = time.time_ns()
    out = []
    for b in range(n_batches):
        dev = DEVICES[b % len(DEVICES)]
        samples = tuple(
            Sample("part_count" if i % 3 else "state", t0 + b * 10_000 + i,
                   (b * per_batch + i) if i % 3 else ("PRODUCING", "IDLE")[i % 2])
            for i in range(per_batch))
        out.append((dev.topic("data"), Batch("edge-1", seq0 + b, samples).encode(), per_batch))
    return out


# --- config and decoding ------------------------------------------------------------------


def test_sample_config_loads(monkeypatch):
    monkeypatch.setenv("HOSTNAME", "box7")
    cfg = load_config(SAMPLE_YAML, GatewayConfig)
    assert cfg.client_id == "gateway-box7"
    assert cfg.share_group == "gateways"
    assert cfg.batch.max_samples == 5000 and cfg.batch.max_interval_s == 0.2
    assert cfg.store.embedded is not None and cfg.store.influxdb is None
    gw = Gateway(cfg, writers=[])
    assert gw.topic_filter == "$share/gateways/shopfloor/v1/+/+/+/+/+/data"


def test_config_errors(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("mqtt: {port: 1883}\n")
    with pytest.raises(ConfigError, match=r"store: required key is missing"):
        load_config(f, GatewayConfig)
    f.write_text("store: {}\n")
    with pytest.raises(ConfigError, match="at least one store"):
        load_config(f, GatewayConfig)
    f.write_text("store: {embedded: {path: x.db}}\nbatch: {max_sample: 3}\n")
    with pytest.raises(ConfigError, match=r"g\.yaml[\s\S]*batch\.max_sample: unknown key"):
        load_config(f, GatewayConfig)
    f.write_text("store: {embedded: {path: x.db}}\nshare_group: 'a/#'\n")
    with pytest.raises(ConfigError, match="share_group"):
        load_config(f, GatewayConfig)
    doc = yaml.safe_load(SAMPLE_YAML.read_text())
    doc["client_id"] = "gw-1"
    doc["mqtt"]["password"] = "hunter2"
    doc["store"]["influxdb"] = {"version": 2, "url": "http://x:8086", "org": "o", "bucket": "b",
                                "token": "tok-123"}
    cfg = parse_config(doc, GatewayConfig)
    assert "hunter2" not in repr(cfg) and "tok-123" not in repr(cfg)


def test_decode_message():
    topic, payload, n = batches(1, 4)[0]
    rows = decode_message(topic, payload)
    assert len(rows) == n and all(d == DEVICES[0] for d, _ in rows)
    for bad_topic in (DEVICES[0].topic("status"), "shopfloor/v1/a/b/c/d/data",
                      "shopfloor/v1/a/b/c/d/e f/data", "other/v1/a/b/c/d/e/data"):
        with pytest.raises(ContractError) as e:
            decode_message(bad_topic, payload)
        assert e.value.reason == "bad_topic"


# --- on a real broker ---------------------------------------------------------------------


MALFORMED = [
    ("bad_json", DEVICES[0].topic("data"), b'{"v":1,"agent":"edge-1",'),
    ("bad_value", DEVICES[0].topic("data"),
     b'{"v":1,"agent":"edge-1","seq":1,"samples":[{"tag":"t","ts":1,"v":NaN,"q":"good"}]}'),
    ("bad_timestamp", DEVICES[1].topic("data"),
     b'{"v":1,"agent":"edge-1","seq":1,"samples":[{"tag":"t","ts":"now","v":1}]}'),
    ("bad_value", DEVICES[1].topic("data"), json.dumps(
        {"v": 1, "agent": "edge-1", "seq": 1,
         "samples": [{"tag": "t", "ts": time.time_ns(), "v": [1, 2]}]}).encode()),
    ("bad_schema", DEVICES[2].topic("data"), b'{"v":1,"agent":"edge-1","seq":-1,"samples":[]}'),
    ("bad_version", DEVICES[2].topic("data"), b'{"v":3}'),  # v1, v2 accepted
    ("bad_topic", "shopfloor/v1/acme/plant 1/machining/line1/m0/data", batches(1, 2)[0][1]),
    ("bad_json", DEVICES[0].topic("data"), b"\xff\xfe" + b"x" * 3000),
]


def test_gateway_stores_valid_and_dead_letters_bad(mosquitto, influxdb, tmp_path):
    cfg = gateway_cfg(mosquitto, tmp_path, store={
        "embedded": {"path": str(tmp_path / "store.db")},
        "influxdb": {"version": 1, "url": influxdb.url, "database": influxdb.database}})
    gw = Gateway(cfg)
    gw.start()
    pub = Publisher(mosquitto.port, watch=f"{DEAD_LETTER_TOPIC}/#")
    try:
        assert gw.wait_ready(10)
        valid = batches(60, 50)
        expected = sum(n for *_, n in valid)
        for i, (topic, payload, _) in enumerate(valid):
            pub.publish(topic, payload)
            if i % 8 == 0 and i // 8 < len(MALFORMED):
                _, bad_topic, bad_payload = MALFORMED[i // 8]
                pub.publish(bad_topic, bad_payload)
        # a status message is not on the data subscription: never seen by the gateway
        pub.publish(DEVICES[0].topic("status"), b'{"v":1,"online":true}')

        wait_until(lambda: gw.stats().samples_stored == expected, what="all samples stored")
        wait_until(lambda: len(pub.received) == len(MALFORMED), what="dead letters")
        stats = gw.stats()
        want: dict[str, int] = {}
        for reason, *_ in MALFORMED:
            want[reason] = want.get(reason, 0) + 1
        assert stats.rejects == want
        assert stats.messages == len(valid) + len(MALFORMED)
        assert stats.batches_written >= 1 and stats.last_batch_latency_s is not None
        assert gw.running and stats.connected

        dead = sorted(((m.topic, json.loads(m.payload)) for m in pub.received),
                      key=lambda td: td[0])
        assert [t for t, _ in dead] == sorted(f"{DEAD_LETTER_TOPIC}/{r}" for r, *_ in MALFORMED)
        by_payload = {base64.b64decode(d["payload"]): d for _, d in dead}
        for reason, topic, payload in MALFORMED:
            d = by_payload[payload[:1024]]
            assert (d["reason"], d["topic"]) == (reason, topic) and d["detail"]

        with SqliteStore(tmp_path / "store.db") as store:
            assert store.count() == expected
            assert set(store.last_seen()) == {d.asset_id for d in DEVICES}
        r = influxdb.query('SELECT count("quality") FROM "samples"')
        assert r["results"][0]["series"][0]["values"][0][1] == expected

        # redelivered duplicates (same samples again) change nothing
        for topic, payload, _ in valid[:5]:
            pub.publish(topic, payload)
        wait_until(lambda: gw.stats().messages_done == len(valid) + len(MALFORMED) + 5)
        with SqliteStore(tmp_path / "store.db") as store:
            assert store.count() == expected
    finally:
        pub.close()
        gw.stop()
    assert not gw.running


class FlakyWriter:
    """Fails the first `fail` writes, refuses rows tagged 'poison', is slow on purpose."""

    def __init__(self, inner: SqliteStore, fail: int = 0, delay_s: float = 0.0):
        self.inner, self.fail, self.delay_s = inner, fail, delay_s
        self.calls = 0
        self.broken = False

    def write(self, rows: list[DeviceSample]) -> None:
        self.calls += 1
        time.sleep(self.delay_s)
        if self.broken or self.calls <= self.fail:
            raise ConnectionError("store is down")
        if any(s.tag == "poison" for _, s in rows):
            raise PermanentWriteError("poison tag refused")
        self.inner.write(rows)

    def close(self) -> None:
        self.inner.close()


def test_retry_backpressure_and_poison(mosquitto, tmp_path):
    cfg = gateway_cfg(mosquitto, tmp_path, queue_max_messages=3, retry_max_s=0.2)
    writer = FlakyWriter(SqliteStore(tmp_path / "store.db"), fail=4, delay_s=0.01)
    gw = Gateway(cfg, writers=[writer])
    gw.start()
    pub = Publisher(mosquitto.port, watch=f"{DEAD_LETTER_TOPIC}/#")
    try:
        assert gw.wait_ready(10)
        valid = batches(150, 10)
        poison = Batch("edge-1", 999, (Sample("poison", time.time_ns(), 1.0),)).encode()
        for i, (topic, payload, _) in enumerate(valid):
            pub.publish(topic, payload)
            if i == 70:
                pub.publish(DEVICES[0].topic("data"), poison)
        wait_until(lambda: gw.stats().samples_stored == 1500, what="all stored")
        wait_until(lambda: len(pub.received) == 1)
        stats = gw.stats()
        assert stats.write_errors == 4
        assert stats.rejects == {"store_rejected": 1}
        assert pub.received[0].topic == f"{DEAD_LETTER_TOPIC}/store_rejected"
        assert writer.inner.count() == 1500
    finally:
        pub.close()
        gw.stop()


def test_unacked_messages_are_redelivered_after_restart(mosquitto, tmp_path):
    """A gateway whose store is down acks nothing; the next one gets every message."""
    cfg = gateway_cfg(mosquitto, tmp_path, drain_timeout_s=0.5, retry_max_s=0.1)
    down = FlakyWriter(SqliteStore(tmp_path / "other.db"))
    down.broken = True
    gw = Gateway(cfg, writers=[down])
    gw.start()
    pub = Publisher(mosquitto.port)
    valid = batches(40, 5)
    try:
        assert gw.wait_ready(10)
        for topic, payload, _ in valid[:20]:
            pub.publish(topic, payload)
        wait_until(lambda: gw.stats().messages == 20 and gw.stats().write_errors > 2)
    finally:
        gw.stop()
    assert gw.stats().samples_stored == 0
    for topic, payload, _ in valid[20:]:  # while no gateway is connected
        pub.publish(topic, payload)
    gw2 = Gateway(cfg)  # same client id: the same persistent session
    gw2.start()
    try:
        wait_until(lambda: gw2.stats().samples_stored == 200, what="redelivery")
        time.sleep(0.3)
        with SqliteStore(tmp_path / "store.db") as store:
            assert store.count() == 200
    finally:
        pub.close()
        gw2.stop()


def test_run_stops_cleanly_on_sigterm(mosquitto, tmp_path):
    cfg_file = tmp_path / "gateway.yaml"
    db = tmp_path / "store.db"
    cfg_file.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "password": "pw-secret",
                 "username": "u"},
        "client_id": "gw-proc", "store": {"embedded": {"path": str(db)}}}))
    proc = subprocess.Popen([sys.executable, "-m", "shopfloor", "gateway", "--config",
                             str(cfg_file)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    pub = Publisher(mosquitto.port)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
        reader.start()
        wait_until(lambda: any("subscribed to" in line for line in lines), what="subscribed")
        valid = batches(10, 20)
        for topic, payload, _ in valid:
            pub.publish(topic, payload)
        wait_until(lambda: SqliteStore(db).count() == 200, what="stored by the process")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        reader.join(5)
        log = "".join(lines)
        assert "gateway stopped" in log and "samples_stored=200" in log
        assert "pw-secret" not in log
    finally:
        pub.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class GatedLedger(MemoryLedger):
    """A ledger whose writes wait for ``release`` (``entered`` set when one is waiting)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def write(self, rows, seqs=None, closed=None):
        self.entered.set()
        assert self.release.wait(20)
        return super().write(rows, seqs, closed)


def test_settled_means_recorded_not_just_dequeued(mosquitto, tmp_path):
    """An empty queue is not a settled gateway (the test_gateway_policy flake of issue 17:
    the writer still held the last batch); ``messages_done`` counts what is recorded."""
    ledger = GatedLedger()
    gw = Gateway(gateway_cfg(mosquitto, tmp_path), writers=[], ledger=ledger)
    gw.start()
    pub = Publisher(mosquitto.port)
    try:
        assert gw.wait_ready(10)
        topic, payload, _ = batches(1, 3)[0]
        pub.publish(topic, payload)
        assert ledger.entered.wait(20)
        stats = gw.stats()
        assert stats.queue_depth == 0 and stats.messages == 1  # dequeued ...
        assert stats.messages_done == 0 and ledger.seq_ranges() == {}  # ... not recorded
        ledger.release.set()
        wait_until(lambda: gw.stats().messages_done == 1, what="settled")
        assert ledger.seq_ranges() == {"edge-1": [(0, 0)]}
    finally:
        ledger.release.set()
        pub.close()
        gw.stop()
