"""The edge against independent servers (node-opcua, npm modbus-serial): what it publishes
over real Mosquitto is true of the device, not only of our own simulators.

A counter changing many times per heartbeat period is stored in the device's order and
counts the parts made (both protocols, subscribe and poll); OPC UA poll heartbeats are new
samples; after a server restart no tag is published good unless read from the new
session, and a node that cannot be resolved is published bad, then found again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from peers import ModbusPeer, NodeOpcUa
from test_edge_integration import Collector, wait_for

from shopfloor.contract import DevicePath, Quality, Sample
from shopfloor.edge.agent import Agent
from shopfloor.edge.config import EdgeConfig
from shopfloor.server.kernels.counters import counter_increase_ref

pytestmark = pytest.mark.timeout(180)

PATH = {"enterprise": "e", "site": "s", "area": "a", "line": "l"}
DEV = DevicePath("e", "s", "a", "l", "m")


def edge_config(tmp_path: Path, mqtt_port: int, device: dict[str, Any],
                heartbeat_s: float) -> EdgeConfig:
    return EdgeConfig.model_validate({
        "agent_id": "edge-peer", "mqtt": {"port": mqtt_port, "reconnect_min_s": 0.2,
                                          "reconnect_max_s": 1},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "publish": {"max_batch_interval_s": 0.05, "heartbeat_s": heartbeat_s},
        "devices": [{"id": "m", "path": PATH, **device}]})


def opcua_device(peer: NodeOpcUa, names: dict[str, str], **kw: Any) -> dict[str, Any]:
    return {"protocol": "opcua", "endpoint": peer.url, "sampling_interval_ms": 20,
            "timeout_s": 3, "reconnect_max_s": 0.5,
            "tags": [{"name": n, "signal": s, "node": peer.node(n)} for n, s in names.items()],
            **kw}


def stored(samples: list[Sample], tag: str) -> list[Sample]:
    """The series a store keeps: one sample per timestamp (the last one received), by ts."""
    by_ts = {s.ts: s for s in samples if s.tag == tag}
    return [by_ts[ts] for ts in sorted(by_ts)]


async def _count(cfg: EdgeConfig, mqtt_port: int, count: Any) -> tuple[list[Sample], int]:
    """Run the agent while ``count()`` (blocking) makes parts; the stored part_count series
    once the last count is in, and the number of parts made."""
    collector = Collector(mqtt_port)
    try:
        async with Agent(cfg):
            await wait_for(lambda: collector.samples(DEV), 30, "first sample")
            first = collector.samples(DEV)[0].value
            made = (await asyncio.to_thread(count)) - first
            await wait_for(lambda: [s.value for s in collector.samples(DEV)][-1] == first + made,
                           30, "the last count")
        return stored(collector.samples(DEV), "part_count"), made
    finally:
        collector.stop()


def assert_counts_as_made(series: list[Sample], made: int) -> None:
    values = [s.value for s in series]
    drops = [(a, b) for a, b in zip(values, values[1:], strict=False) if b < a]
    assert drops == [], f"{len(drops)} drops in the stored series, e.g. {drops[:3]}"
    assert counter_increase_ref([float(v) for v in values], 32) == made


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
def test_opcua_heartbeat_never_puts_an_older_count_after_a_newer(tmp_path, mosquitto, mode):
    var = [{"name": "PartCount", "type": "UInt32", "value": 0}]
    with NodeOpcUa(tmp_path / "peer", var) as peer:
        device = opcua_device(peer, {"PartCount": "part_count"}, mode=mode, poll_s=0.02)
        cfg = edge_config(tmp_path, mosquitto.port, device, heartbeat_s=0.05)
        series, made = asyncio.run(_count(cfg, mosquitto.port, lambda: peer.command(
            count="PartCount", n=200, period_ms=30, jitter_ms=60, timeout=90)["value"]))
    assert made == 200
    assert_counts_as_made(series, made)


def test_modbus_heartbeat_never_puts_an_older_count_after_a_newer(tmp_path, mosquitto):
    with ModbusPeer(tmp_path / "peer") as peer:
        device = {"protocol": "modbus", "host": "127.0.0.1", "port": peer.port,
                  "poll_s": 0.02, "reconnect_max_s": 0.5,
                  "tags": [{"name": "parts", "signal": "part_count",
                            "register": {"address": 0, "type": "uint32"}}]}
        cfg = edge_config(tmp_path, mosquitto.port, device, heartbeat_s=0.05)
        series, made = asyncio.run(_count(cfg, mosquitto.port, lambda: peer.command(
            count=0, n=200, period_ms=30, jitter_ms=60, timeout=90)["value"]))
    assert made == 200
    assert_counts_as_made(series, made)


def test_opcua_poll_heartbeat_is_a_new_sample_so_a_steady_machine_stays_alive(
        tmp_path, mosquitto):
    """A value that does not change is re-published every heartbeat with a new timestamp
    (the server's staleness rule needs rows), in poll mode as in subscribe mode."""
    var = [{"name": "State", "type": "Int32", "value": 1}]
    with NodeOpcUa(tmp_path / "peer", var) as peer:
        device = opcua_device(peer, {"State": "state"}, mode="poll", poll_s=0.1)
        device["tags"][0]["map"] = {1: "PRODUCING"}
        cfg = edge_config(tmp_path, mosquitto.port, device, heartbeat_s=0.3)
        collector = Collector(mosquitto.port)

        async def run() -> None:
            async with Agent(cfg):
                await wait_for(lambda: len(stored(collector.samples(DEV), "state")) >= 5, 20,
                               "five stored state rows")
        try:
            asyncio.run(run())
        finally:
            collector.stop()
    *rows, stop = stored(collector.samples(DEV), "state")
    assert (stop.value, stop.quality) == ("OFFLINE", Quality.BAD)  # the agent stopped
    assert {(s.value, s.quality) for s in rows} == {("PRODUCING", Quality.GOOD)}
    gaps = [(b.ts - a.ts) / 1e9 for a, b in zip(rows, rows[1:], strict=False)]
    assert all(0.2 < g < 1.5 for g in gaps[:4]), gaps


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
def test_after_a_server_restart_no_tag_is_good_unless_read_from_the_new_session(
        tmp_path, mosquitto, mode):
    """The restarted server has another namespace table and lacks PartCount: part_count is
    published bad (never the previous session's 100 as good), State goes on good; when
    PartCount is added back it is resolved again (by namespace URI) and published good."""
    both = [{"name": "PartCount", "type": "UInt32", "value": 100},
            {"name": "State", "type": "Int32", "value": 1}]
    peer = NodeOpcUa(tmp_path / "peer", both)
    device = opcua_device(peer, {"PartCount": "part_count", "State": "state"}, mode=mode,
                          poll_s=0.1)
    device["tags"][1]["map"] = {1: "PRODUCING", 2: "IDLE"}
    cfg = edge_config(tmp_path, mosquitto.port, device, heartbeat_s=0.2)
    collector = Collector(mosquitto.port)

    def parts() -> list[Sample]:
        return [s for s in collector.samples(DEV) if s.tag == "part_count"]

    async def run() -> tuple[int, NodeOpcUa]:
        async with Agent(cfg):
            await wait_for(lambda: any(s.value == 100 for s in parts()), 30, "part_count 100")
            peer.kill()
            restart_ns = time.time_ns()
            second = await asyncio.to_thread(NodeOpcUa, tmp_path / "peer", both[1:],
                                             port=peer.port, extra_namespace=True)
            await asyncio.to_thread(second.command, set="State", value=2)
            await wait_for(lambda: any(s.value == "IDLE" for s in collector.samples(DEV)),
                           30, "IDLE from the second session")
            await asyncio.sleep(1.0)  # five heartbeat periods
            await asyncio.to_thread(second.command, add={**both[0], "value": 250})
            await wait_for(lambda: any(s.value == 250 for s in parts()), 30, "part_count 250")
            return restart_ns, second

    try:
        restart_ns, second = asyncio.run(run())
        second.close()
    finally:
        collector.stop()
    after = [s for s in parts() if s.ts > restart_ns]
    before_250 = after[:next(i for i, s in enumerate(after) if s.value == 250)]
    assert before_250, "part_count was not published bad while it could not be resolved"
    assert all(s.quality == Quality.BAD for s in before_250), before_250
    *after, stop = after
    assert (stop.value, stop.quality) == (250, Quality.BAD)  # the agent stopped
    assert after[-1].quality == Quality.GOOD and after[-1].value == 250


def test_opcua_values_reach_a_plain_json_consumer_as_json_values(tmp_path, mosquitto):
    """LocalizedText, a Double[3], a DateTime and a UInt64 above 2^53 read from node-opcua,
    as a consumer whose JSON parser reads every number as a double (JavaScript) sees them:
    text, JSON text, ISO 8601 and the exact integer; no Python representation."""
    import json

    big = "17429726349691885448"
    var = [{"name": "Text", "type": "LocalizedText", "value": {"locale": "en", "text": "hello"}},
           {"name": "Arr", "type": "Double", "array": True, "value": [1.5, 2.5, 3.5]},
           {"name": "When", "type": "DateTime", "value": "2024-01-02T03:04:05.678Z"},
           {"name": "Big", "type": "UInt64", "value": big}]
    with NodeOpcUa(tmp_path / "peer", var) as peer:
        device = opcua_device(peer, {v["name"]: None for v in var})
        cfg = edge_config(tmp_path, mosquitto.port, device, heartbeat_s=60)
        collector = Collector(mosquitto.port)

        async def run() -> None:
            async with Agent(cfg):
                await wait_for(lambda: len({s.tag for s in collector.samples(DEV)}) == 4, 30,
                               "all four tags")
        try:
            asyncio.run(run())
        finally:
            collector.stop()
    with collector.lock:
        docs = [json.loads(p, parse_int=float) for _, p in collector.data]
    got = {s["tag"]: s.get("v", s.get("vi")) for d in docs for s in d["samples"]
           if s["q"] == "good"}
    assert got == {"Text": "hello", "Arr": "[1.5,2.5,3.5]",
                   "When": "2024-01-02T03:04:05.678000Z", "Big": big}
    assert json.loads(got["Arr"]) == [1.5, 2.5, 3.5]


@pytest.mark.parametrize("impl", ["modbus-serial", "jsmodbus"])
def test_modbus_nan_and_an_illegal_address_are_published_bad_and_logged_once(
        tmp_path, mosquitto, impl, caplog):
    """A float32 register holding NaN is published as "NaN" with quality bad (it was never
    published); a read of an address the server does not have is published bad with the
    reason as its value (never read) every heartbeat and logged once (it was a warning per
    poll): modbus-serial answers exception 02, jsmodbus a response with no registers."""
    import logging

    with ModbusPeer(tmp_path / "peer", impl=impl, registers=10) as peer:
        if impl == "modbus-serial":
            peer.command(illegal=[12])  # jsmodbus: beyond its 10 registers
        peer.write(0, [0x7FC0, 0x0000, 0x4049, 0x0FDB])  # NaN, 3.1415927 (ABCD)
        reg = {"type": "float32"}
        device = {"protocol": "modbus", "host": "127.0.0.1", "port": peer.port,
                  "poll_s": 0.05, "reconnect_max_s": 0.5,
                  "tags": [{"name": "load", "register": {"address": 0, **reg}},
                           {"name": "pi", "register": {"address": 2, **reg}},
                           {"name": "gone", "register": {"address": 12}}]}
        cfg = edge_config(tmp_path, mosquitto.port, device, heartbeat_s=0.2)
        collector = Collector(mosquitto.port)

        def of(tag: str) -> list[Sample]:
            return [s for s in collector.samples(DEV) if s.tag == tag]

        async def run() -> None:
            async with Agent(cfg):
                await wait_for(lambda: all(len(of(t)) >= 5 for t in ("load", "pi", "gone")),
                               30, "five samples of each tag (heartbeats)")
        try:
            with caplog.at_level(logging.INFO, logger="shopfloor"):
                asyncio.run(run())
        finally:
            collector.stop()
    *load, _ = of("load")  # the last: the agent's stop mark
    *gone, _ = of("gone")
    assert {(s.value, s.quality) for s in load} == {("NaN", Quality.BAD)}
    why = {"modbus-serial": "exception 2", "jsmodbus": "short response: 0 of 1"}[impl]
    assert {(s.value, s.quality) for s in gone} == {(why, Quality.BAD)}
    assert {(round(s.value, 6), s.quality) for s in of("pi")[:-1]} == {
        (3.141593, Quality.GOOD)}
    refusals = [r for r in caplog.records if why in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]


def test_after_a_clean_restart_values_are_stamped_after_the_stop_mark(tmp_path, mosquitto):
    """A value unchanged through a clean restart comes back with its old SourceTimestamp;
    stamped so, it was the previous run's row again, before the stop's OFFLINE mark, and
    the machine stayed OFFLINE until the next heartbeat (heartbeat_s, 10 s by default)."""
    var = [{"name": "State", "type": "Int32", "value": 1},
           {"name": "PartCount", "type": "UInt32", "value": 5}]
    with NodeOpcUa(tmp_path / "peer", var) as peer:
        device = opcua_device(peer, {"State": "state", "PartCount": "part_count"})
        device["tags"][0]["map"] = {1: "PRODUCING"}
        cfg = edge_config(tmp_path, mosquitto.port, device, heartbeat_s=60)
        collector = Collector(mosquitto.port)

        def good(tag: str) -> int:
            return sum(s.quality == Quality.GOOD for s in collector.samples(DEV) if s.tag == tag)

        async def run() -> None:
            for n in (1, 2):  # two runs, each stopped cleanly
                async with Agent(cfg):
                    await wait_for(lambda n=n: good("state") == good("part_count") == n, 30,
                                   f"run {n}: both tags read")
        try:
            asyncio.run(run())
        finally:
            collector.stop()
    for tag, value in (("state", "PRODUCING"), ("part_count", 5)):
        series = [(s.value, s.quality) for s in stored(collector.samples(DEV), tag)]
        stop = ("OFFLINE" if tag == "state" else 5, Quality.BAD)
        assert series == [(value, Quality.GOOD), stop] * 2, (tag, series)
