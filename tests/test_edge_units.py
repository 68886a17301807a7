"""Edge agent units: config validation, Modbus decoding and read planning, mapping,
report by exception, OPC UA timestamp/quality conversion, the durable outbox."""

from __future__ import annotations

import copy
import json
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from asyncua import ua

from shopfloor.config import ConfigError, load_config
from shopfloor.contract import Quality, Sample, decode_batch
from shopfloor.demo.configs import edge_config_from_scenario
from shopfloor.edge.config import EdgeConfig, ModbusTag, OpcUaTag, load_edge_config
from shopfloor.edge.mapping import ReportByException, map_value, meta_payload, to_sample
from shopfloor.edge.modbus.codec import decode
from shopfloor.edge.modbus.plan import plan_reads
from shopfloor.edge.opcua.codec import quality_of, source_ts_ns
from shopfloor.edge.outbox import Outbox
from shopfloor.times import datetime_ns

EDGE = Path(__file__).parent.parent / "edge"
SAMPLE = EDGE / "edge.sample.yaml"


# --- config ---------------------------------------------------------------------------

def test_sample_config_loads():
    cfg = load_edge_config(SAMPLE)
    assert cfg.agent_id == "edge-1"
    cnc, press = cfg.devices
    assert cnc.protocol == "opcua" and press.protocol == "modbus"
    assert cnc.tags[0].published_name == "state" and cnc.tags[0].map[1] == "PRODUCING"
    assert press.tags[1].reg.type == "uint32" and press.unit == 1
    assert cfg.publish.max_batch_samples == 500 and cfg.publish.heartbeat_s == 10


def _broken(tmp_path: Path, edit) -> str:
    data = yaml.safe_load(SAMPLE.read_text())
    edit(data)
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(path, EdgeConfig)
    msg = str(err.value)
    assert str(path) in msg
    return msg


def test_config_errors_name_file_and_key(tmp_path):
    msg = _broken(tmp_path, lambda d: d["publish"].update(max_batch_sampels=3))
    assert "publish.max_batch_sampels" in msg and "unknown key" in msg

    msg = _broken(tmp_path, lambda d: d.pop("agent_id"))
    assert "agent_id" in msg and "missing" in msg

    msg = _broken(tmp_path, lambda d: d["devices"][1]["tags"][0]["register"].update(
        type="uint24"))
    assert "devices.1.modbus.tags.0.register.type" in msg

    msg = _broken(tmp_path, lambda d: d["devices"][0].update(protocol="profinet"))
    assert "devices.0" in msg and "opcua" in msg

    msg = _broken(tmp_path, lambda d: d["devices"][0]["tags"][0].update(signal="sate"))
    assert "devices.0.opcua.tags.0.signal" in msg and "unknown signal" in msg

    msg = _broken(tmp_path, lambda d: d["devices"][0]["tags"][0].update(node="cnc.State"))
    assert "devices.0.opcua.tags.0.node" in msg

    msg = _broken(tmp_path, lambda d: d["devices"][1].update(id="press/01"))
    assert "devices.1.modbus.id" in msg

    msg = _broken(tmp_path, lambda d: d["devices"][1]["tags"][0]["register"].update(
        table="coil"))
    assert "must be 'bool'" in msg

    msg = _broken(tmp_path, lambda d: d["devices"][0].update(queue_size=1))
    assert "devices.0.opcua.queue_size" in msg

    msg = _broken(tmp_path, lambda d: d["devices"][1]["tags"][3].update(signal="state"))
    assert "two tags publish as 'state'" in msg

    msg = _broken(tmp_path, lambda d: d["devices"].append(d["devices"][1]))
    assert "is used twice in this agent" in msg

    def same_id_elsewhere(d):  # same id on another line: the agent's keys would collide
        d["devices"].append(copy.deepcopy(d["devices"][1]))
        d["devices"][-1]["path"]["line"] = "other-line"
        d["devices"][-1]["port"] = 15020
    msg = _broken(tmp_path, same_id_elsewhere)
    assert "is used twice in this agent" in msg


def test_config_never_shows_password(tmp_path):
    data = yaml.safe_load(SAMPLE.read_text())
    data["mqtt"]["password"] = "hunter2-mqtt"
    data["devices"][0].update(username="u", password="hunter2-opc")
    cfg = EdgeConfig.model_validate(data)
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.model_dump())


def test_from_scenario_is_valid_config():
    scenario = yaml.safe_load("""
seed: 7
enterprise: {id: acme, name: "Acme Precision"}
site: {id: plant1, name: "Plant 1"}
timeline: {lead_in_s: 3, duration_s: 60, lead_out_s: 3}
areas:
  - id: machining
    lines:
      - id: line1
        machines:
          - {id: cnc-01, protocol: opcua, port: 4840}
          - {id: press-01, protocol: modbus, port: 5020, host: 10.0.0.7}
""")
    raw = edge_config_from_scenario(scenario, agent_id="edge-1", mqtt={"port": 1884},
                                    outbox_path="/tmp/ob.sqlite")
    json.dumps(raw)  # plain data, dumpable as YAML/JSON
    cfg = EdgeConfig.model_validate(raw)
    cnc, press = cfg.devices
    assert cnc.endpoint == "opc.tcp://127.0.0.1:4840"
    assert [t.node for t in cnc.tags] == [
        "ns=2;s=cnc-01.State", "ns=2;s=cnc-01.PartCount", "ns=2;s=cnc-01.RejectCount",
        "ns=2;s=cnc-01.SpindleLoad"]
    assert [t.published_name for t in cnc.tags] == [
        "state", "part_count", "reject_count", "spindle_load"]
    assert cnc.tags[0].map == {0: "NO_SHIFT", 1: "PRODUCING", 2: "IDLE", 3: "DOWN",
                               4: "SETUP", 5: "PLANNED_STOP"}
    assert cnc.tags[1].bits == 32 and cnc.tags[2].bits == 32
    assert (press.host, press.port, press.unit, press.poll_s) == ("10.0.0.7", 5020, 1, 0.05)
    assert [(t.reg.address, t.reg.type, t.reg.word_order) for t in press.tags] == [
        (0, "uint16", "ABCD"), (1, "uint32", "ABCD"), (3, "uint32", "ABCD"),
        (5, "float32", "ABCD")]
    assert press.device_path.topic("data") == \
        "shopfloor/v1/acme/plant1/machining/line1/press-01/data"
    assert cfg.mqtt.port == 1884 and str(cfg.outbox.path) == "/tmp/ob.sqlite"


# --- Modbus decoding -----------------------------------------------------------------

def _regs(fmt: str, value, order: str) -> list[int]:
    """Registers as a device with ``order`` stores ``value`` (A = most significant byte)."""
    b = struct.pack(">" + fmt, value)
    if order in ("BADC", "DCBA"):
        b = b"".join(b[i + 1:i + 2] + b[i:i + 1] for i in range(0, len(b), 2))
    words = [int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b), 2)]
    return words[::-1] if order in ("CDAB", "DCBA") else words


@pytest.mark.parametrize("order", ["ABCD", "CDAB", "BADC", "DCBA"])
@pytest.mark.parametrize(("type_", "fmt", "value"), [
    ("uint16", "H", 0xBEEF), ("int16", "h", -2), ("uint32", "I", 0xDEADBEEF),
    ("int32", "i", -123456789), ("float32", "f", 42.5), ("uint64", "Q", 2**63 + 5),
    ("int64", "q", -(2**40)), ("float64", "d", -1.0e-3)])
def test_decode_each_type_and_order(type_, fmt, value, order):
    got = decode(_regs(fmt, value, order), type_, order)
    assert got == pytest.approx(value) if "float" in type_ else got == value


def test_decode_known_layouts():
    assert decode([0x0001, 0x0002], "uint32", "ABCD") == 0x00010002
    assert decode([0x0002, 0x0001], "uint32", "CDAB") == 0x00010002
    assert decode([0x0100, 0x0200], "uint32", "BADC") == 0x00010002
    assert decode([0x0200, 0x0100], "uint32", "DCBA") == 0x00010002
    assert decode([0x4229, 0x0000], "float32", "ABCD") == 42.25
    assert decode([0xFFFF], "int16") == -1
    assert decode([1], "bool") is True


def _mtag(name: str, address: int, type_: str = "uint16", table: str = "holding") -> ModbusTag:
    return ModbusTag.model_validate({"name": name, "register": {
        "table": table, "address": address, "type": type_}})


def test_plan_reads_merges_contiguous_registers():
    tags = [_mtag("c", 5, "float32"), _mtag("a", 0), _mtag("b", 1, "uint32"),
            _mtag("d", 3, "uint32"), _mtag("far", 100), _mtag("i", 0, table="input"),
            _mtag("x", 7, "bool", "coil"), _mtag("y", 8, "bool", "coil")]
    reads = {(r.table, r.start, r.count): [t.name for t in r.tags] for r in plan_reads(tags)}
    assert reads == {("holding", 0, 7): ["a", "b", "d", "c"], ("holding", 100, 1): ["far"],
                     ("input", 0, 1): ["i"], ("coil", 7, 2): ["x", "y"]}


def test_plan_reads_respects_request_size():
    tags = [_mtag(f"t{i}", i * 2, "uint32") for i in range(100)]  # 200 contiguous registers
    reads = plan_reads(tags)
    assert [r.count for r in reads] == [124, 76]
    assert sum(len(r.tags) for r in reads) == 100


# --- mapping -------------------------------------------------------------------------

STATE_TAG = OpcUaTag(name="State", node="ns=2;s=m.State", signal="state",
                     map={0: "NO_SHIFT", 1: "PRODUCING"})


def test_mapping_signal_and_value_map():
    s = to_sample(STATE_TAG, 1, 123)
    assert s == Sample("state", 123, "PRODUCING", Quality.GOOD)
    assert to_sample(STATE_TAG, 1, 5, Quality.BAD).quality == Quality.BAD
    unknown = to_sample(STATE_TAG, 9, 5)
    assert (unknown.value, unknown.quality) == ("UNKNOWN:9", Quality.UNCERTAIN)
    assert map_value(STATE_TAG, 1.0, Quality.GOOD) == ("PRODUCING", Quality.GOOD)
    assert map_value(STATE_TAG, "x", Quality.GOOD) == ("UNKNOWN:x", Quality.UNCERTAIN)


def test_mapping_plain_tags_and_counters():
    load = OpcUaTag(name="spindle_load", node="ns=2;s=m.L", unit="%")
    assert to_sample(load, 12.5, 1) == Sample("spindle_load", 1, 12.5)
    # JSON has no NaN: a register or node holding one is published as text, quality bad
    assert to_sample(load, float("nan"), 1) == Sample("spindle_load", 1, "NaN", Quality.BAD)
    assert to_sample(load, float("-inf"), 1).value == "-Infinity"
    assert to_sample(load, None, 1) is None
    assert to_sample(load, True, 1).value is True
    cut = to_sample(load, "x" * 1000, 1)  # cut to the contract's limit: no longer exact
    assert (cut.value, cut.quality) == ("x" * 256, Quality.UNCERTAIN)
    parts = OpcUaTag(name="PartCount", node="ns=2;s=m.P", signal="part_count", bits=16)
    assert to_sample(parts, 70000, 1) == Sample("part_count", 1, 70000 - 65536)


def test_meta_payload():
    tags = [STATE_TAG, _mtag("part_count", 1, "uint32"),
            OpcUaTag(name="P", node="ns=2;s=m.P", signal="part_count", bits=32)]
    meta = json.loads(meta_payload("edge-1", tags))
    assert meta == {"v": 1, "agent": "edge-1", "tags": [
        {"name": "state", "signal": "state", "unit": None, "type": "string"},
        {"name": "part_count", "signal": None, "unit": None, "type": "uint32"},
        {"name": "part_count", "signal": "part_count", "unit": None, "type": "uint32"}]}


def test_report_by_exception():
    rbe = ReportByException(heartbeat_s=10)
    s = Sample("a", 1, 5)
    assert rbe.should_publish(s, 0)
    assert not rbe.should_publish(Sample("a", 2, 5), 1_000_000_000)  # unchanged
    assert rbe.should_publish(Sample("a", 3, 6), 2_000_000_000)  # changed
    assert rbe.should_publish(Sample("a", 4, 6, Quality.BAD), 2_100_000_000)  # quality
    assert not rbe.should_publish(Sample("a", 5, 6, Quality.BAD), 11_000_000_000)
    assert rbe.should_publish(Sample("a", 6, 6, Quality.BAD), 12_100_000_000)  # heartbeat
    assert rbe.should_publish(Sample("b", 1, 1), 0)
    assert rbe.should_publish(Sample("b", 1, True), 1) is not False  # 1 vs True: changed
    assert rbe.due(12_200_000_000) == [("b", True, Quality.GOOD)]
    assert rbe.due(12_300_000_000) == []
    rbe.forget()
    assert rbe.should_publish(Sample("a", 7, 6, Quality.BAD), 12_400_000_000)


# --- OPC UA conversion ---------------------------------------------------------------

def test_opcua_timestamps_and_quality():
    dt = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    ns = 1740830400_123456000
    assert datetime_ns(dt) == ns
    assert datetime_ns(dt.replace(tzinfo=None)) == ns
    assert source_ts_ns(ua.DataValue(ua.Variant(1), SourceTimestamp=dt)) == ns
    server_only = ua.DataValue(ua.Variant(1), ServerTimestamp=dt)
    server_only.SourceTimestamp = None
    assert source_ts_ns(server_only) == ns
    assert quality_of(ua.StatusCode(ua.StatusCodes.Good)) == Quality.GOOD
    assert quality_of(ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)) == \
        Quality.UNCERTAIN
    assert quality_of(ua.StatusCode(ua.StatusCodes.BadCommunicationError)) == Quality.BAD
    assert quality_of(None) == Quality.GOOD


# --- outbox --------------------------------------------------------------------------

def _samples(n: int, base: int = 0) -> list[dict]:
    return [Sample("t", base + i, i).to_json() for i in range(n)]


def test_outbox_durable_across_reopen(tmp_path):
    path = tmp_path / "ob.sqlite"
    ob = Outbox(path, "edge-1")
    e1 = ob.append("press-01", "topic/a", _samples(3))
    e2 = ob.append("cnc-01", "topic/b", _samples(2))
    e3 = ob.append("press-01", "topic/a", _samples(1))
    assert (e1.seq, e2.seq, e3.seq) == (1, 2, 3)
    assert decode_batch(e1.payload).seq == 1 and decode_batch(e1.payload).agent == "edge-1"
    assert ob.depth == 6 and ob.enqueued == 6
    ob.db.close()  # as if the process died: no flush, no close()

    ob = Outbox(path, "edge-1")
    assert [e.seq for e in ob.pending("press-01")] == [1, 3]
    assert [e.seq for e in ob.pending("cnc-01")] == [2]
    assert [e.seq for e in ob.pending("press-01", after_seq=1)] == [3]
    assert ob.pending("press-01")[0].payload == e1.payload
    assert ob.depth == 6
    assert ob.append("cnc-01", "topic/b", _samples(1)).seq == 4

    ob.ack(1, 3)
    assert [e.seq for e in ob.pending("press-01")] == [3]  # acked: not resent
    assert ob.acknowledged == 3 and ob.depth == 4
    assert ob.flush_acks() == 1
    ob.ack(2, 2)
    ob.ack(3, 1)
    ob.ack(4, 1)
    ob.close()

    ob = Outbox(path, "edge-1")  # all acknowledged: empty, seq keeps increasing
    assert ob.pending("press-01") == [] and ob.pending("cnc-01") == [] and ob.depth == 0
    assert ob.append("press-01", "topic/a", _samples(1)).seq == 5
    ob.close()


def test_outbox_keeps_each_devices_newest_sample_time(tmp_path):
    """Across a kill and after its batches are acknowledged and deleted: the restarted
    agent marks its downtime after the killed run's last sample (issue 13 point 9)."""
    path = tmp_path / "ob.sqlite"
    ob = Outbox(path, "edge-1")
    ob.append("press-01", "t", [{"tag": "x", "ts": t, "v": 1, "q": "good"} for t in (9, 40, 7)])
    ob.append("press-01", "t", [{"tag": "x", "ts": 12, "v": 1, "q": "good"}])  # older
    ob.append("cnc-01", "t", [{"tag": "x", "ts": 2**62, "v": 1, "q": "good"}])
    for seq in (1, 2, 3):
        ob.ack(seq, 1)
    ob.flush_acks()
    ob.db.close()  # killed
    ob = Outbox(path, "edge-1")
    assert (ob.newest_ts("press-01"), ob.newest_ts("cnc-01"), ob.newest_ts("x")) == (
        40, 2**62, None)
    ob.close()


def test_outbox_max_bytes_drops_oldest(tmp_path):
    ob = Outbox(tmp_path / "ob.sqlite", "edge-1", max_bytes=1000)
    seqs = [ob.append("d", "t", _samples(5, i * 10)).seq for i in range(20)]
    left = [e.seq for e in ob.pending("d")]
    assert left == seqs[-len(left):] and 0 < len(left) < 20
    assert ob.bytes <= 1000
    assert ob.dropped == 5 * (20 - len(left))
    assert ob.depth == 5 * len(left)
    ob.close()


def test_batches_are_split_below_the_payload_limit():
    from shopfloor.contract import MAX_PAYLOAD_BYTES, encode_samples
    from shopfloor.edge.agent import _chunks

    small = _samples(500)
    assert _chunks(small) == [small]
    big = [Sample("t" * 100, i, "\u00e9" * 256).to_json() for i in range(2000)]
    chunks = _chunks(big)
    assert len(chunks) > 1 and [s for c in chunks for s in c] == big
    assert all(len(encode_samples("edge-1", 10**12, c)) < MAX_PAYLOAD_BYTES for c in chunks)


def test_a_samples_size_bound_is_never_below_its_json():
    from shopfloor.contract import _wire_sample
    from shopfloor.edge.agent import _size

    tag = "T" * 128
    for v in (-2**63, 2**64 - 1, -1.7976931348623157e308, -2.2250738585072014e-308, False,
              "", "\u00e9\n\u4e2d" * 85):
        for q in Quality:
            s = Sample(tag, -2**63, v, q).to_json()
            exact = max(len(json.dumps(s, separators=(",", ":"))),
                        len(json.dumps(_wire_sample(s), separators=(",", ":")))) + 1
            assert exact <= _size(s) <= exact + 100, (v, q)


def test_outbox_listener_hears_commits_and_first_acks(tmp_path):
    heard: list[tuple[str, int]] = []

    class Listener:
        def committed(self, seq: int) -> None:
            heard.append(("committed", seq))

        def acknowledged(self, seq: int) -> None:
            heard.append(("acknowledged", seq))

    ob = Outbox(tmp_path / "ob.sqlite", "edge-1", listener=Listener())
    a, b = (ob.append("d", "t", _samples(2, i)) for i in (0, 10))
    ob.ack(b.seq, b.n_samples)
    ob.ack(b.seq, b.n_samples)  # a duplicate PUBACK is heard once
    assert heard == [("committed", a.seq), ("committed", b.seq), ("acknowledged", b.seq)]
    ob.close()


def test_every_device_protocol_has_a_driver():
    from typing import get_args

    from shopfloor.edge.config import DeviceConfig
    from shopfloor.edge.modbus.driver import ModbusDriver
    from shopfloor.edge.opcua.driver import OpcUaDriver
    from shopfloor.edge.protocols import DRIVERS, driver_for

    models = get_args(get_args(DeviceConfig)[0])
    protocols = {get_args(m.model_fields["protocol"].annotation)[0] for m in models}
    assert protocols == set(DRIVERS) == {"modbus", "opcua"}
    cfg = load_edge_config(EDGE / "edge.sample.yaml")
    kinds = {d.protocol: type(driver_for(d, None, 10.0)) for d in cfg.devices}  # type: ignore[arg-type]
    assert kinds == {"modbus": ModbusDriver, "opcua": OpcUaDriver}
