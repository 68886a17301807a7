"""Gateway input policy and retention on a real Mosquitto: device allowlist (`accept`),
configurable clock-skew limit, embedded-store retention by age."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from test_gateway import DEVICES, SAMPLE_YAML, Publisher, batches, gateway_cfg, wait_until

from shopfloor.config import ConfigError, load_config, parse_config
from shopfloor.contract import (
    DEAD_LETTER_TOPIC,
    Batch,
    BatchRejected,
    ContractError,
    DevicePath,
    Sample,
    decode_data,
)
from shopfloor.gateway.config import GatewayConfig, device_matches
from shopfloor.gateway.service import Gateway
from shopfloor.storage.sqlite import SqliteStore

S = 10**9
DAY = 86_400 * S


def test_sample_config_documents_the_new_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("HOSTNAME", "x")
    cfg = load_config(SAMPLE_YAML, GatewayConfig)  # defaults: accept all, keep forever
    assert cfg.accept is None and cfg.max_clock_skew_s == 366 * 86_400
    assert cfg.store.embedded is not None and cfg.store.embedded.retention_days is None
    text = SAMPLE_YAML.read_text()
    uncommented = text.replace("# accept:", "accept:").replace("#   - ", "  - ") \
        .replace("# max_clock_skew_s:", "max_clock_skew_s:") \
        .replace("# retention_days:", "retention_days:")
    f = tmp_path / "g.yaml"
    f.write_text(uncommented)
    cfg = load_config(f, GatewayConfig)
    assert cfg.accept and cfg.max_clock_skew_s != 366 * 86_400
    assert cfg.store.embedded is not None and cfg.store.embedded.retention_days == 30


def test_accept_patterns():
    d = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")
    for p, want in [("acme/plant1/machining/line1/cnc-01", True), ("acme/#", True),
                    ("#", True), ("acme/plant1/+/line1/cnc-*", True),
                    ("acme/plant1/+/line1/press-*", False), ("acme/plant2/#", False),
                    ("acme/plant1/machining/line1/cnc-0[2-9]", False),
                    ("acme/plant1/machining/line1/cnc-01/#", True)]:
        assert device_matches(p, d) is want, p
    for bad in ("acme/plant1", "acme/#/x", "a/b/c/d/e/f", "acme/pl ant/#", "a//b/c/d"):
        with pytest.raises(ConfigError, match="accept"):
            parse_config({"accept": [bad], "store": {"embedded": {"path": "x.db"}}},
                         GatewayConfig)


def test_decode_data_skew_limit_is_exact():
    now = 1_763_779_200 * S
    dev = DEVICES[0]
    for dt, ok in [(60 * S, True), (-60 * S, True), (60 * S + 1, False), (-60 * S - 1, False)]:
        payload = Batch("edge-1", 7, (Sample("t", now, 1), Sample("t", now + dt, 2))).encode()
        if ok:
            assert len(decode_data(dev.topic("data"), payload, now_ns=now,
                                   max_skew_ns=60 * S)[2]) == 2
        else:
            with pytest.raises(BatchRejected) as e:
                decode_data(dev.topic("data"), payload, now_ns=now, max_skew_ns=60 * S)
            assert (e.value.reason, e.value.agent, e.value.seq) == ("bad_timestamp", "edge-1", 7)
    payload = Batch("edge-1", 8, (Sample("t", now, 1),)).encode()
    with pytest.raises(BatchRejected) as e:
        decode_data(dev.topic("data"), payload, now_ns=now, accept=lambda _d: False)
    assert e.value.reason == "unknown_device" and e.value.seq == 8
    with pytest.raises(ContractError) as e2:  # a bad payload keeps its own reason
        decode_data(dev.topic("data"), b"{", now_ns=now, accept=lambda _d: False)
    assert e2.value.reason == "bad_json" and not isinstance(e2.value, BatchRejected)


def test_unknown_devices_and_skew_rejected_acked_and_no_false_gaps(mosquitto, tmp_path):
    # m0, m1 and plant2 are known; m2 (every third batch) is not
    cfg = gateway_cfg(mosquitto, tmp_path, max_clock_skew_s=3600,
                      accept=["acme/plant1/+/line1/m[01]", "acme/plant2/#"])
    gw = Gateway(cfg)
    gw.start()
    pub = Publisher(mosquitto.port, watch=f"{DEAD_LETTER_TOPIC}/#")
    other = DevicePath("acme", "plant2", "assembly", "l9", "robot-1")
    msgs = batches(30, 10)  # seqs 0..29, devices m0, m1, m2, m0, ...
    msgs.insert(5, (other.topic("data"), Batch("edge-1", 30, (
        Sample("state", time.time_ns(), "IDLE"),)).encode(), 1))
    msgs.insert(11, (DEVICES[0].topic("data"), Batch("edge-1", 31, (  # 2 h old: skewed
        Sample("state", time.time_ns() - 7200 * S, "IDLE"),)).encode(), 1))
    expected = sum(n for t, _, n in msgs if DEVICES[2].asset_id not in t) - 1
    try:
        assert gw.wait_ready(10)
        for topic, payload, _ in msgs:
            pub.publish(topic, payload)
        wait_until(lambda: gw.stats().samples_stored == expected, what="valid data stored")
        wait_until(lambda: len(pub.received) == 11, what="dead letters")
        # settled: every message written or rejected, its seq in the ledger (an empty
        # queue is not enough: the writer may still hold the last batch, a reject)
        wait_until(lambda: gw.stats().messages_done == 32, what="every message settled")
        stats = gw.stats()
        assert stats.rejects == {"unknown_device": 10, "bad_timestamp": 1}
        assert stats.messages == 32 and stats.samples_received == expected
        dead = [json.loads(m.payload) for m in pub.received]
        assert sorted(m.topic for m in pub.received) == \
            [f"{DEAD_LETTER_TOPIC}/bad_timestamp"] + [f"{DEAD_LETTER_TOPIC}/unknown_device"] * 10
        assert {d["topic"] for d in dead if d["reason"] == "unknown_device"} == \
            {DEVICES[2].topic("data")}
        with SqliteStore(tmp_path / "store.db") as store:
            assert store.count() == expected
            assert store.count(DEVICES[2]) == 0 and store.count(other) == 1
            # rejected batches count as handled: no gap, no replay request
            assert store.seq_ranges() == {"edge-1": [(0, 31)]}
        assert stats.gaps_open == 0 and stats.replay_requests == 0
    finally:
        gw.stop()
    # every rejected message was acknowledged: the same session gets only the new one
    gw2 = Gateway(cfg)
    gw2.start()
    try:
        assert gw2.wait_ready(10)
        topic, payload, n = batches(1, 3, seq0=32)[0]
        pub.publish(topic, payload)
        wait_until(lambda: gw2.stats().samples_stored == n, what="marker stored")
        assert gw2.stats().messages == 1 and gw2.stats().rejects == {}
    finally:
        pub.close()
        gw2.stop()


def test_retention_in_the_gateway(mosquitto, tmp_path: Path):
    db = tmp_path / "store.db"
    now = time.time_ns()
    dev = DEVICES[0]
    with SqliteStore(db) as store:  # history from before: 40 and 20 days old
        store.write([(dev, Sample("part_count", now - 40 * DAY + i * S, i)) for i in range(230)]
                    + [(dev, Sample("old_only", now - 50 * DAY + i, 1.0)) for i in range(3)]
                    + [(dev, Sample("part_count", now - 20 * DAY + i, 2.0)) for i in range(4)],
                    seqs={"edge-0": [0, 1]})
    cfg = gateway_cfg(mosquitto, tmp_path, store={"embedded": {
        "path": str(db), "retention_days": 30, "retention_batch_rows": 50}})
    gw = Gateway(cfg)
    gw.start()
    pub = Publisher(mosquitto.port)
    try:
        assert gw.wait_ready(10)
        valid = batches(20, 10)
        for topic, payload, _ in valid:
            pub.publish(topic, payload)
        wait_until(lambda: gw.stats().samples_stored == 200, what="stored")
        wait_until(lambda: gw.stats().retention_passes >= 1, what="a retention pass")
        stats = gw.stats()
        assert stats.samples_expired == 230 + 2  # old_only keeps its newest sample
        with SqliteStore(db) as store:
            assert store.count() == 200 + 4 + 1
            assert store.read(dev, "old_only", now, now + 1).ts.tolist() == [now - 50 * DAY + 2]
            assert store.seq_ranges() == {"edge-0": [(0, 1)], "edge-1": [(0, 19)]}
    finally:
        pub.close()
        gw.stop()
    assert "expired=232" in gw.stats().line()


def test_sample_yaml_is_valid_yaml():
    assert isinstance(yaml.safe_load(SAMPLE_YAML.read_text()), dict)


def test_agents_may_publish_only_for_their_devices(mosquitto, tmp_path):
    """Issue 17: `agents` maps each agent to its devices; a batch from another agent (or
    for another device) is rejected as agent_not_allowed and its seq is not recorded."""
    cfg = gateway_cfg(mosquitto, tmp_path, agents={
        "edge-1": ["acme/plant1/machining/line1/m0", "acme/plant1/machining/line1/m1"],
        "edge-2": ["acme/plant1/machining/line1/m2"]})
    assert cfg.agent_may("edge-1", DEVICES[0]) and not cfg.agent_may("edge-1", DEVICES[2])
    assert not cfg.agent_may("edge-3", DEVICES[0])
    gw = Gateway(cfg)
    gw.start()
    pub = Publisher(mosquitto.port, watch=f"{DEAD_LETTER_TOPIC}/#")
    now = time.time_ns()
    msgs = [(DEVICES[0], "edge-1", 0), (DEVICES[2], "edge-2", 0), (DEVICES[1], "edge-1", 1),
            (DEVICES[2], "edge-1", 2),  # edge-1 for edge-2's device
            (DEVICES[0], "edge-2", 1),  # edge-2 claims edge-1's device
            (DEVICES[0], "edge-3", 0)]  # an agent nobody listed
    try:
        assert gw.wait_ready(10)
        for i, (dev, agent, seq) in enumerate(msgs):
            pub.publish(dev.topic("data"), Batch(agent, seq, (Sample("t", now + i, 1.0),)).encode())
        wait_until(lambda: gw.stats().messages_done == len(msgs), what="settled")
        wait_until(lambda: len(pub.received) == 3, what="dead letters")
        stats = gw.stats()
        assert stats.rejects == {"agent_not_allowed": 3} and stats.samples_stored == 3
        assert {json.loads(m.payload)["reason"] for m in pub.received} == {"agent_not_allowed"}
        with SqliteStore(tmp_path / "store.db") as store:
            assert store.count(DEVICES[0]) == 1 and store.count(DEVICES[2]) == 1
            assert store.seq_ranges() == {"edge-1": [(0, 1)], "edge-2": [(0, 0)]}
    finally:
        pub.close()
        gw.stop()
    with pytest.raises(ConfigError, match="agents.edge-1 pattern"):
        parse_config({"agents": {"edge-1": ["acme/#/x"]},
                      "store": {"embedded": {"path": "x.db"}}}, GatewayConfig)
