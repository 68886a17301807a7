"""Property: the agent's funnel keeps each tag's stored series in the device's order, so a
counter changing many times per heartbeat period counts exactly the parts made however
heartbeats (stamped with the agent's clock) interleave with changes still on their way.

A unit test of ``Agent.sample`` (no MQTT): the end-to-end versions against node-opcua and
npm modbus-serial are in test_edge_peers.py."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.contract import Quality, Sample
from shopfloor.edge.agent import Agent
from shopfloor.edge.config import EdgeConfig
from shopfloor.server.kernels.counters import counter_increase_ref

MS = 1_000_000


def agent() -> Agent:
    cfg = EdgeConfig.model_validate({
        "agent_id": "edge-t", "outbox": {"path": "unused.db"},
        "publish": {"max_batch_samples": 50_000},
        "devices": [{"id": "m", "protocol": "modbus", "host": "127.0.0.1",
                     "path": {"enterprise": "e", "site": "s", "area": "a", "line": "l"},
                     "tags": [{"name": "parts", "signal": "part_count",
                               "register": {"address": 0, "type": "uint32"}}]}]})
    a = Agent(cfg)
    a._buffers["m"] = []
    return a


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.integers(1, 3), min_size=1, max_size=80),
       gaps_ms=st.lists(st.integers(0, 20), min_size=80, max_size=80),
       delays_ms=st.lists(st.integers(0, 60), min_size=80, max_size=80),
       heartbeat_ms=st.integers(5, 500), start=st.integers(0, 2**32 - 300))
def test_heartbeats_never_put_an_older_count_after_a_newer(steps, gaps_ms, delays_ms,
                                                           heartbeat_ms, start):
    """The device counts up at its own times; each change reaches the agent after a delay
    (in order); meanwhile a heartbeat re-sends the last value that has arrived, stamped
    with the agent's clock, whenever ``heartbeat_ms`` passed without a change arriving."""
    t0 = 1_700_000_000_000 * MS
    changes, ts, arrive, value = [], t0, t0, start
    for step, gap, delay in zip(steps, gaps_ms, delays_ms, strict=False):
        ts += gap * MS + 1
        value += step
        arrive = max(arrive, ts + delay * MS)
        changes.append((arrive, Sample("parts", ts, value)))
    a = agent()
    a.sample("m", Sample("parts", t0, start))  # the first read
    last_sent, last_value = t0, start
    for arrival, sample in changes:
        while last_sent + heartbeat_ms * MS < arrival:  # heartbeats due before it arrives
            last_sent += heartbeat_ms * MS
            a.sample("m", Sample("parts", last_sent, last_value, Quality.GOOD))
        a.sample("m", sample)
        last_sent, last_value = arrival, sample.value
    by_ts = {s["ts"]: s["v"] for s in a._buffers["m"]}  # a store: one row per ts
    assert len(by_ts) == len(a._buffers["m"])  # no two samples share a timestamp
    stored = [by_ts[t] for t in sorted(by_ts)]
    assert all(b >= a for a, b in zip(stored, stored[1:], strict=False)), stored
    assert counter_increase_ref([float(v) for v in stored], 32) == value - start
