"""The wire contract rejects names that would break topics, line protocol or InfluxQL."""

import json

import pytest

from shopfloor import contract
from shopfloor.contract import ContractError, DevicePath


@pytest.mark.parametrize("bad", ["abc\n", "a b", "a/b", "+", "#", "", "-x", "a,b"])
def test_segments_must_match_whole(bad):
    with pytest.raises(ContractError):
        DevicePath("acme", "plant1", "area", "line", bad)


@pytest.mark.parametrize("tag", ["state\n", "a b", "x=1", 'q"'])
def test_tags_must_match_whole(tag):
    payload = json.dumps({"v": 1, "agent": "e1", "seq": 1,
                          "samples": [{"tag": tag, "ts": 1, "v": 1}]}).encode()
    with pytest.raises(ContractError) as e:
        contract.decode_batch(payload)
    assert e.value.reason == "bad_tag"


def test_topic_round_trip():
    path = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")
    assert DevicePath.from_topic(path.topic("data")) == (path, "data")


def test_v2_is_exact_for_a_parser_that_reads_numbers_as_doubles():
    """v1's ns timestamps and 64-bit integers do not survive a JavaScript-like JSON parser
    (every number a double); v2 sends them as decimal strings, and receivers take both."""
    import json as _json

    from shopfloor.contract import Batch, Sample, decode_batch

    ts, big = 1796152112655000123, 17429726349691885448
    batch = Batch("edge-1", 3, (Sample("e", ts, big), Sample("n", ts + 1, 7),
                                Sample("x", ts + 2, 2.5)))
    def as_doubles(payload: bytes) -> dict:
        return _json.loads(payload, parse_int=float)

    v1 = as_doubles(batch.encode(1))["samples"][0]
    assert int(v1["ts"]) != ts and int(v1["v"]) != big  # what the issue saw
    doc = as_doubles(batch.encode())
    assert doc["v"] == 2
    first, small, real = doc["samples"]
    assert (int(first["ts"]), int(first["vi"])) == (ts, big) and "v" not in first
    assert (small["v"], real["v"]) == (7, 2.5)
    assert decode_batch(batch.encode()) == decode_batch(batch.encode(1)) == batch


@pytest.mark.parametrize("sample, reason", [
    ({"tag": "t", "ts": 5, "v": 1}, "bad_timestamp"),  # v2: ts is a string
    ({"tag": "t", "ts": "5.0", "v": 1}, "bad_timestamp"),
    ({"tag": "t", "ts": "5", "v": 1, "vi": "1"}, "bad_value"),
    ({"tag": "t", "ts": "5", "vi": 1}, "bad_value"),
    ({"tag": "t", "ts": "5", "vi": str(2**64)}, "bad_value"),
])
def test_v2_refuses(sample, reason):
    import json as _json

    from shopfloor.contract import ContractError, decode_batch

    payload = _json.dumps({"v": 2, "agent": "a", "seq": 1, "samples": [sample]}).encode()
    with pytest.raises(ContractError) as err:
        decode_batch(payload)
    assert err.value.reason == reason
