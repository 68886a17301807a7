"""The Sparkplug B payload module: the committed schema is what protoc makes of the .proto,
values of every datatype we use survive the wire (negative integers as two's complement),
quality and unit properties, topics, STATE and rebirth payloads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from shopfloor.contract import Quality
from shopfloor.sparkplug import payload as sp
from shopfloor.sparkplug.payload import DT, MessageType, SparkplugError, Topic
from shopfloor.sparkplug.schema import Payload

HERE = Path(sp.__file__).parent


def test_committed_descriptor_is_the_compiled_proto(tmp_path):
    out = tmp_path / "fresh.desc"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{HERE}",
                    f"--descriptor_set_out={out}", str(HERE / "sparkplug_b.proto")], check=True)
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    committed = descriptor_pb2.FileDescriptorSet.FromString(
        (HERE / "sparkplug_b.desc").read_bytes())
    assert fresh == committed, "regenerate sparkplug_b.desc (see the .proto's header)"
    names = {f.name for f in committed.file[0].message_type[0].nested_type}
    assert {"Metric", "PropertySet", "DataSet", "Template", "MetaData"} <= names


@pytest.mark.parametrize(("datatype", "value"), [
    (DT.Int8, -128), (DT.Int8, 127), (DT.Int16, -2), (DT.Int32, -(2**31)), (DT.Int32, 7),
    (DT.Int64, -(2**63)), (DT.Int64, 2**63 - 1), (DT.UInt8, 255), (DT.UInt16, 65535),
    (DT.UInt32, 2**32 - 1), (DT.UInt64, 2**64 - 1), (DT.Float, 1.5), (DT.Double, -0.1),
    (DT.Boolean, True), (DT.Boolean, False), (DT.String, "PRODUCING"), (DT.Text, "ü€"),
    (DT.DateTime, 1_764_000_000_123)])
def test_values_round_trip_through_the_wire(datatype, value):
    assert sp.fits(datatype, value)
    p = Payload(timestamp=1)
    m = p.metrics.add(name="x", datatype=datatype)
    sp.set_value(m, datatype, value)
    back = Payload.FromString(p.SerializeToString()).metrics[0]
    assert sp.get_value(back, datatype) == value


def test_fits_and_inferred_datatypes():
    assert not sp.fits(DT.Int8, 128) and not sp.fits(DT.UInt16, -1)
    assert not sp.fits(DT.Double, "1") and not sp.fits(DT.Int64, True)
    assert not sp.fits(DT.Boolean, 1) and not sp.fits(DT.Double, float("nan"))
    assert sp.datatype_for(3) == DT.Int64 and sp.datatype_for(2**63) == DT.UInt64
    assert sp.datatype_for(True) == DT.Boolean and sp.datatype_for(0.5) == DT.Double
    assert sp.datatype_for(7, "uint32") == DT.UInt32 and sp.datatype_for(None, "uint16") == \
        DT.UInt16
    assert sp.datatype_for("UNKNOWN:9", "uint16") == DT.String  # the declared type cannot hold it


def test_fields_are_those_tahu_uses():
    m = Payload().metrics.add()
    sp.set_value(m, DT.UInt32, 7)
    assert m.WhichOneof("value") == "long_value"
    sp.set_value(m, DT.UInt16, 7)
    assert m.WhichOneof("value") == "int_value"
    m.int_value = 9  # a sender that puts a UInt32 in int_value is read all the same
    assert sp.get_value(m, DT.UInt32) == 9


def test_narrow_values_sign_extended_by_a_sender_read_negative():
    m = Payload().metrics.add(name="x", datatype=DT.Int8, int_value=0xFF)
    assert sp.get_value(m, DT.Int8) == -1
    m.int_value = 0xFFFFFFFF
    assert sp.get_value(m, DT.Int16) == -1
    assert sp.get_value(Payload().metrics.add(is_null=True, int_value=3), DT.Int32) is None
    assert sp.get_value(Payload().metrics.add(bytes_value=b"x"), DT.Bytes) is None


def test_quality_and_unit_properties():
    m = Payload().metrics.add(name="x")
    sp.set_quality(m, Quality.GOOD)
    assert not m.HasField("properties") and sp.get_quality(m) == Quality.GOOD
    for q in (Quality.BAD, Quality.UNCERTAIN):
        m = Payload().metrics.add(name="x")
        sp.set_quality(m, q)
        sp.set_unit(m, "%")
        m = Payload.FromString(Payload(metrics=[m]).SerializeToString()).metrics[0]
        assert sp.get_quality(m) == q and sp.get_unit(m) == "%"
    for code, q in ((192, Quality.GOOD), (216, Quality.GOOD), (500, Quality.UNCERTAIN),
                    (64, Quality.UNCERTAIN), (0, Quality.BAD), (2**32 - 1, Quality.BAD)):
        m = Payload().metrics.add(name="x")
        m.properties.keys.append("quality")
        m.properties.values.add(type=DT.Int32, int_value=code)
        assert sp.get_quality(m) == q


def test_topics():
    t = Topic.parse("spBv1.0/Plant 1/DDATA/edge-1/CNC 01")
    assert (t.group, t.type, t.node, t.device) == ("Plant 1", MessageType.DDATA, "edge-1",
                                                   "CNC 01")
    assert str(t) == "spBv1.0/Plant 1/DDATA/edge-1/CNC 01"
    assert Topic.parse("spBv1.0/g/NBIRTH/n").device is None
    for bad in ("spBv1.0/g/DDATA/n", "spBv1.0/g/NDATA/n/d", "spBv1.0/g/XDATA/n",
                "spAv1.0/g/NDATA/n", "spBv1.0//NDATA/n", "spBv1.0/g/NDATA/n/d/e"):
        with pytest.raises(SparkplugError) as exc:
            Topic.parse(bad)
        assert exc.value.reason == "sp_bad_topic"
    assert sp.state_topic("scada-1") == "spBv1.0/STATE/scada-1"
    with pytest.raises(SparkplugError):
        sp.state_topic("a/b")


def test_state_and_rebirth_payloads():
    assert sp.decode_state(sp.state_payload(True, 123)) == (True, 123)
    assert sp.decode_state(b"OFFLINE") == (False, 0)
    for bad in (b"{}", b"yes", b'{"online": 1, "timestamp": 2}', b"\xff"):
        with pytest.raises(SparkplugError):
            sp.decode_state(bad)
    p = sp.decode(sp.rebirth_request(5))
    assert sp.wants_rebirth(p) and p.metrics[0].name == sp.REBIRTH_METRIC
    with pytest.raises(SparkplugError) as exc:
        sp.decode(b"\x0a\xff\xff")
    assert exc.value.reason == "sp_bad_payload"
