"""End-to-end completeness: seq ranges, gap timers, the outbox replay window, and a gap
that the broker "lost" (acknowledged, never delivered) filled by a replay on real Mosquitto."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from test_gateway import DEVICES, gateway_cfg, wait_until

from shopfloor.commands import agent_cmd_topic, decode_replay_request, replay_request
from shopfloor.contract import ContractError, Sample
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.publisher import DevicePublisher
from shopfloor.gateway.completeness import GapTracker, gaps
from shopfloor.gateway.service import Gateway
from shopfloor.mqtt import MqttConfig
from shopfloor.storage.ledger import add_seqs
from shopfloor.storage.sqlite import SqliteStore


@given(st.lists(st.integers(0, 200), max_size=100), st.lists(st.integers(0, 200), max_size=50))
def test_ranges_are_the_merged_set(first, second):
    r = add_seqs(add_seqs([], first), second)
    covered = {s for lo, hi in r for s in range(lo, hi + 1)}
    assert covered == set(first) | set(second)
    assert all(a[1] + 1 < b[0] for a, b in zip(r, r[1:], strict=False))  # merged, sorted
    missing = {s for lo, hi in gaps(r) for s in range(lo, hi + 1)}
    if r:
        assert missing == set(range(r[0][0], r[-1][1] + 1)) - covered


def test_gap_tracker_asks_backs_off_and_gives_up():
    t = GapTracker(timeout_s=1.0, max_attempts=2)
    t.update("e1", [(1, 3), (6, 9)], now=0.0)
    assert t.open_gaps == 1 and t.missing() == 2
    assert t.due(now=0.5) == ({}, {})
    assert t.due(now=1.0) == ({"e1": [(4, 5)]}, {})
    assert t.due(now=1.5) == ({}, {})  # backed off
    assert t.due(now=3.0) == ({"e1": [(4, 5)]}, {})
    assert t.due(now=20.0) == ({}, {"e1": [(4, 5)]})
    assert (t.requests, t.lost, t.open_gaps) == (2, 2, 0)
    t.update("e1", [(1, 9)], now=21.0)
    assert t.due(now=100.0) == ({}, {})


def test_replay_request_contract():
    assert agent_cmd_topic("edge-1") == "shopfloor/v1/_agent/edge-1/cmd"
    assert decode_replay_request(replay_request([(4, 5), (9, 9)])) == [(4, 5), (9, 9)]
    for bad in (b"{", b'{"v":1,"cmd":"replay","ranges":[[5,4]]}', b'{"v":1,"cmd":"x"}',
                b'{"v":1,"cmd":"replay","ranges":[[1,true]]}'):
        try:
            decode_replay_request(bad)
        except ContractError:
            continue
        raise AssertionError(bad)
    try:
        agent_cmd_topic("+/#")
    except ContractError:
        pass
    else:
        raise AssertionError("wildcards in an agent id")


def test_store_merges_seq_ranges_in_the_write_transaction(tmp_path):
    path = tmp_path / "s.db"
    a, b = SqliteStore(path), SqliteStore(path)  # two gateways on one store
    row = (DEVICES[0], Sample("t", time.time_ns(), 1.0))
    assert a.write([row], {"e1": [1, 2, 5]}) == {"e1": [(1, 2), (5, 5)]}
    assert b.write([], {"e1": [3]}) == {"e1": [(1, 3), (5, 5)]}
    assert a.write([], closed={"e1": [(4, 4)]}) == {"e1": [(1, 5)]}
    a.close(), b.close()
    assert SqliteStore(path).seq_ranges() == {"e1": [(1, 5)]}


def test_outbox_keeps_a_replay_window(tmp_path):
    ob = Outbox(tmp_path / "ob.db", "e1", replay_window=3)
    for i in range(6):
        ob.append("m0", "topic", [{"tag": "t", "ts": i, "v": i, "q": "good"}])
    assert ob.replay(1, 6) == []  # nothing acknowledged yet: nothing to replay
    for seq in range(1, 6):
        ob.ack(seq, 1)
    ob.flush_acks()
    assert [e.seq for e in ob.replay(1, 6)] == [3, 4, 5]  # the newest 3 acknowledged
    assert [e.seq for e in ob.pending("m0")] == [6]
    ob.close()
    ob = Outbox(tmp_path / "ob.db", "e1", replay_window=3)  # survives a restart
    assert [e.seq for e in ob.replay(1, 6)] == [3, 4, 5] and ob.depth == 1
    assert ob.append("m0", "topic", [{"tag": "t", "ts": 9, "v": 9, "q": "good"}]).seq == 7


def test_a_batch_the_broker_lost_is_replayed(mosquitto, tmp_path: Path):
    """The broker acknowledged seq 2 and lost it: the gateway asks, the edge replays it."""
    cfg = gateway_cfg(mosquitto, tmp_path, completeness={"timeout_s": 0.5})
    gw = Gateway(cfg)
    gw.start()
    assert gw.wait_ready(10)
    ob = Outbox(tmp_path / "ob.db", "e1", replay_window=100)
    t0 = time.time_ns()
    for i in range(3):
        ob.append("m0", DEVICES[0].topic("data"),
                  [{"tag": "x", "ts": t0 + i, "v": i, "q": "good"}])
    ob.ack(2, 1)  # "PUBACKed by the broker", never delivered
    ob.flush_acks()

    async def edge() -> DevicePublisher:
        pub = DevicePublisher(agent="e1", device="m0", path=DEVICES[0],
                              mqtt_cfg=MqttConfig(port=mosquitto.port), outbox=ob, meta=b"{}",
                              max_inflight=5, loop=asyncio.get_running_loop(), commands=True)
        pub.start()
        deadline = time.monotonic() + 30
        while not (gw.stats().samples_stored == 3 and pub.replayed):
            assert time.monotonic() < deadline, gw.stats().line()
            await asyncio.sleep(0.05)
        await asyncio.to_thread(pub.stop)
        return pub

    try:
        pub = asyncio.run(edge())
        wait_until(lambda: gw.stats().gaps_open == 0, 10, "gap closed")
        st_ = gw.stats()
        assert st_.replay_requests >= 1 and st_.gaps_seen == 1 and st_.seqs_lost == 0
        assert pub.replayed >= 1
    finally:
        gw.stop()
        ob.close()
    store = SqliteStore(tmp_path / "store.db")
    assert store.count() == 3
    assert store.seq_ranges() == {"e1": [(1, 3)]}
