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
