"""Sparkplug B against an independent implementation (Eclipse Tahu's JavaScript edge node
client and payload codec, tests/peers/), through real Mosquitto, both ways:

- their edge node feeds our gateway: the OEE the API computes from what it stored matches
  what the node sent; bad input (malformed payloads, data before a birth, an alias
  collision, a seq jump) is counted and handled (reject, rebirth) and the gateway runs on;
- our edge agent, a Sparkplug edge node, is read by their host application: births with
  names, aliases, datatypes and units, data resolved by alias, again after a rebirth, and
  after a SIGKILL the NDEATH the broker sends carries the NBIRTH's bdSeq.
"""

from __future__ import annotations

import json
import random
import signal
import time

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from sparkplug_peers import JsEdgeNode, JsHost
from sparkplug_stack import GROUP, NODE, sparkplug_stack, store_samples
from test_e2e import iso, start_server, wait_until

from shopfloor.config import parse_config
from shopfloor.contract import State
from shopfloor.gateway.config import GatewayConfig
from shopfloor.gateway.service import Gateway
from shopfloor.simulators.truth import Interval, MachineTruth, Truth
from shopfloor.sparkplug.payload import DT
from shopfloor.sparkplug.schema import Payload
from shopfloor.supervisor import Supervisor, free_port, shopfloor_cmd

pytestmark = pytest.mark.timeout(240)

CODES = {"NO_SHIFT": 0, "PRODUCING": 1, "IDLE": 2, "DOWN": 3}
PRESS_WORDS = {"PRODUCING": "Running", "IDLE": "Idle", "DOWN": "Fault", "NO_SHIFT": "Off"}
ICT_S, CYCLE_S, HEARTBEAT_S = 1.6, 2.0, 10
ASSETS = {"CNC-A": "acme/plant1/sp/line1/CNC-A", "Press-B": "acme/plant1/sp/line1/Press-B"}
MAPPING = [
    {"group": "Plant1", "node": "line-edge", "device": "CNC-A", "asset": ASSETS["CNC-A"],
     "signals": {"state": {"metric": "Status/Mode",
                           "map": {v: k for k, v in CODES.items()}},
                 "part_count": {"metric": "Counters/Total"},
                 "reject_count": {"metric": "Counters/Rejects"}}},
    {"group": "Plant1", "node": "line-edge", "device": "Press-*",
     "asset": "acme/plant1/sp/line1/{device}",
     "signals": {"state": {"metric": "State",
                           "map": {v: k for k, v in PRESS_WORDS.items()}},
                 "part_count": {"metric": "Count/Total"},
                 "reject_count": {"metric": "Count/Bad"}}},
]
# device -> state metric, its alias, datatype, value of a state; the counters and aliases
DEVICES = {"CNC-A": ("Status/Mode", 1, "Int32", CODES.__getitem__,
                     "Counters/Total", 2, "Counters/Rejects", 3),
           "Press-B": ("State", 11, "String", PRESS_WORDS.__getitem__,
                       "Count/Total", 12, "Count/Bad", 13)}


def plant_script(w0_ms: int, w1_ms: int, seed: int = 3) -> tuple[dict, Truth]:
    """A shift of seeded states and parts on two devices: the JS node's script (births,
    then DDATA by alias) and the truth it amounts to."""
    rng = random.Random(seed)
    script: dict = {"devices": {}, "data": []}
    machines = {}
    for device, (state_name, a_state, dt, word, total, a_total, bad_name, a_bad) in \
            DEVICES.items():
        born = w0_ms - 2000
        script["devices"][device] = [
            {"name": state_name, "alias": a_state, "type": dt, "value": word("NO_SHIFT"),
             "timestamp": born},
            {"name": total, "alias": a_total, "type": "UInt32", "value": 0,
             "timestamp": born},
            {"name": bad_name, "alias": a_bad, "type": "UInt32", "value": 0,
             "timestamp": born},
            {"name": "Spindle/Load", "alias": a_state + 5, "type": "Float", "value": 0.0,
             "timestamp": born, "properties": {"engUnit": {"type": "String", "value": "%"}}}]
        mt = MachineTruth(ASSETS[device], ICT_S, {})
        t, parts, bad = w0_ms, 0, 0
        while t < w1_ms:
            state = rng.choices(["PRODUCING", "IDLE", "DOWN"], [5, 2, 2])[0]
            end = min(w1_ms, t + rng.randint(10_000, 40_000))
            mt.intervals.append(Interval(State(state), t * 10**6, end * 10**6))
            hb = t
            while hb < end:  # the state now, and again every HEARTBEAT_S (report by exception)
                script["data"].append({"device": device, "timestamp": hb, "metrics": [
                    {"alias": a_state, "type": dt, "value": word(state), "timestamp": hb}]})
                hb += HEARTBEAT_S * 1000
            if state == "PRODUCING":
                p = t + int(CYCLE_S * 1000)
                while p < end:
                    parts += 1
                    mt.part_ts.append(p * 10**6)
                    metrics = [{"alias": a_total, "type": "UInt32", "value": parts,
                                "timestamp": p}]
                    if parts % 9 == 0:
                        bad += 1
                        mt.reject_ts.append(p * 10**6)
                        metrics.append({"alias": a_bad, "type": "UInt32", "value": bad,
                                        "timestamp": p})
                    metrics.append({"alias": a_state + 5, "type": "Float",
                                    "value": 40 + parts % 7, "timestamp": p})
                    script["data"].append({"device": device, "timestamp": p, "metrics": metrics})
                    p += int(CYCLE_S * 1000)
            t = end
        script["data"].append({"device": device, "timestamp": w1_ms, "metrics": [
            {"alias": a_state, "type": dt, "value": word("NO_SHIFT"), "timestamp": w1_ms}]})
        mt.intervals.append(Interval(State.NO_SHIFT, w1_ms * 10**6, (w1_ms + 60_000) * 10**6))
        machines[mt.asset_id] = mt
    script["data"].sort(key=lambda m: m["timestamp"])
    truth = Truth({"t0": w0_ms * 10**6, "shift_start": w0_ms * 10**6,
                   "shift_end": w1_ms * 10**6}, machines)
    return script, truth


def registry() -> dict:
    return {"cluster": {"id": "c", "name": "c"}, "enterprises": [{
        "id": "acme", "name": "Acme", "sites": [{"id": "plant1", "name": "Plant 1",
                                                 "workshops": [{
            "id": "sp", "name": "Sparkplug", "lines": [{"id": "line1", "name": "Line 1",
                                                        "equipment": [
                {"id": d, "name": d, "ideal_cycle_time_s": ICT_S, "counter_bits": 32}
                for d in ASSETS]}]}]}]}]}


class Ncmds:
    """Watches every NCMD on the broker (who asks whom for a rebirth)."""

    def __init__(self, port: int):
        self.seen: list[str] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ncmd-watch")
        self.client.on_message = lambda _c, _u, m: self.seen.append(m.topic)
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("spBv1.0/+/NCMD/+", 1)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=0).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def data(seq: int, metrics: list[dict]) -> bytes:
    p = Payload(timestamp=int(time.time() * 1000), seq=seq)
    for m in metrics:
        p.metrics.add(**m)
    return p.SerializeToString()


def test_their_edge_node_feeds_our_gateway_and_oee_matches(tmp_path, mosquitto):
    now_ms = int(time.time() * 1000)
    w0, w1 = now_ms - 420_000, now_ms - 120_000  # a five-minute shift, played back fast
    script, truth = plant_script(w0, w1)
    (tmp_path / "script.json").write_text(json.dumps(script))
    store = tmp_path / "store.db"
    cfg = parse_config({"mqtt": {"host": "127.0.0.1", "port": mosquitto.port},
                        "client_id": "gw-interop", "share_group": None,
                        "completeness": {"enabled": False},
                        "sparkplug": {"host_id": "shopfloor", "rebirth_min_interval_s": 0.5,
                                      "devices": MAPPING},
                        "store": {"embedded": {"path": str(store)}}}, GatewayConfig)
    gw = Gateway(cfg)
    gw.start()
    assert gw.wait_ready(10)
    watch = Ncmds(mosquitto.port)
    node = JsEdgeNode(mosquitto.port, "Plant1", "line-edge", tmp_path / "script.json")
    sup = Supervisor(tmp_path / "logs")
    try:
        node.wait_for(lambda ev: any(e["type"] == "sent" for e in ev), 30, "the script sent")
        expected = sum(len(m["metrics"]) for m in script["data"]) + 8  # + the births' values
        wait_until(lambda: gw.stats().samples_stored >= expected, 60, "every sample stored")
        stored = store_samples(store)
        assert len(stored) == expected, (len(stored), expected)
        assert {(a, t) for a, t, *_ in stored} >= {(ASSETS["CNC-A"], "Spindle/Load"),
                                                    (ASSETS["Press-B"], "state")}
        assert not gw.stats().rejects and not watch.seen  # nothing lost, no rebirth asked

        (tmp_path / "registry.yaml").write_text(yaml.safe_dump(registry()))
        server_cfg = tmp_path / "server.yaml"
        server_cfg.write_text(yaml.safe_dump({
            "registry": "registry.yaml", "store": {"embedded": {"path": str(store)}},
            "http": {"host": "127.0.0.1", "port": free_port()}}))
        url = start_server(sup, "server", server_cfg)
        for scope, ids in [*((a, [a]) for a in ASSETS.values()),
                           ("acme/plant1/sp/line1", list(ASSETS.values()))]:
            got = httpx.get(f"{url}/api/v1/oee", params={"scope": scope, "start": iso(w0 * 10**6),
                                                         "end": iso(w1 * 10**6)}, timeout=30).json()
            want = truth.oee(ids, w0 * 10**6, w1 * 10**6)
            for key in ("availability", "performance", "quality", "oee"):
                assert got[key] == pytest.approx(want[key], abs=0.01), (scope, key, got, want)
            assert got["counts"]["total"] == want["counts"]["total"] > 50
            assert got["counts"]["reject"] == want["counts"]["reject"] > 5

        # bad input: each counted and handled, the gateway runs on
        t = "spBv1.0/Plant1/DDATA/line-edge/CNC-A"
        watch.publish(t, b"\x0a\xff\xff not protobuf")
        watch.publish("spBv1.0/Plant1/DDATA/ghost/M1", data(3, [{"alias": 1, "int_value": 1}]))
        watch.publish("spBv1.0/Plant1/NBIRTH/intruder", data(0, [
            {"name": "a", "alias": 1, "datatype": DT.Int32, "int_value": 1}]))
        watch.publish("spBv1.0/Plant1/DBIRTH/intruder/M1", data(1, [
            {"name": "b", "alias": 1, "datatype": DT.Int32, "int_value": 1}]))
        wait_until(lambda: {"sp_bad_payload", "sp_no_birth", "sp_alias_collision"}
                   <= set(gw.stats().rejects), 10, "the bad messages counted")
        wait_until(lambda: "spBv1.0/Plant1/NCMD/ghost" in watch.seen, 10,
                   "a rebirth asked of the node that sent data before its birth")
        births = gw.stats().sparkplug["births"]
        watch.publish(t, data(200, [{"alias": 2, "long_value": 1, "timestamp": w1 + 1000}]))
        node.wait_for(lambda ev: any(e["type"] == "rebirth" for e in ev), 15,
                      "their node asked for a rebirth after the seq jump")
        wait_until(lambda: gw.stats().sparkplug["births"] >= births + 3, 10, "the rebirth read")
        assert gw.stats().sparkplug["seq_gaps"] == 1 and gw.running
        assert gw.stats().dead_letters == sum(gw.stats().rejects.values())
    finally:
        node.close()
        watch.close()
        sup.stop_all()
        gw.stop()


def test_our_edge_node_is_read_by_their_host(tmp_path, mosquitto):
    files = sparkplug_stack(tmp_path / "stack", mosquitto.port, primary_host=False)
    host = JsHost(mosquitto.port)
    sup = Supervisor(tmp_path / "logs")
    edge_cmd = shopfloor_cmd("edge", "--config", str(files.edge))
    try:
        plant = sup.start("plant", shopfloor_cmd("simulate", "--scenario", str(files.scenario),
                                                 "--truth", str(files.truth)),
                          files.truth.exists)
        edge = sup.start("edge", edge_cmd, (tmp_path / "stack" / "outbox.db").exists)
        nbirth = host.wait_for(lambda ev: next((e for e in ev if e["type"] == "NBIRTH"), None),
                               30, "NBIRTH")
        assert (nbirth["group"], nbirth["node"], nbirth["seq"]) == (GROUP, NODE, 0)
        dbirths = host.wait_for(lambda ev: len([e for e in ev if e["type"] == "DBIRTH"]) >= 2
                                and [e for e in ev if e["type"] == "DBIRTH"], 30, "DBIRTHs")
        cnc = next(e for e in dbirths if e["device"] == "cnc-01")
        by_name = {m["name"]: m for m in cnc["metrics"]}
        assert set(by_name) == {"state", "part_count", "reject_count", "spindle_load"}
        assert (by_name["state"]["type"], by_name["part_count"]["type"]) == ("String", "UInt32")
        assert by_name["spindle_load"]["unit"] == "%"
        aliases = [m["alias"] for e in dbirths for m in e["metrics"]]
        assert len(set(aliases)) == len(aliases) == 8 and 0 not in aliases

        def resolved(ev: list) -> list:
            return [m for e in ev if e["type"] == "DDATA" for m in e["metrics"]]

        host.wait_for(lambda ev: any(m["name"] == "part_count" and m["value"] > 0
                                     for m in resolved(ev)), 40, "counted parts by alias")
        assert not any(e.get("unknown_alias") for e in host.events)
        seqs = [e["seq"] for e in host.events if e["type"] in ("NBIRTH", "DBIRTH", "DDATA",
                                                                "DDEATH")]
        assert seqs == [i % 256 for i in range(len(seqs))]  # 0, 1, 2, ... across messages
        states = {m["value"] for m in resolved(host.events) if m["name"] == "state"}
        assert states <= {s.value for s in State}

        n = len(host.events)
        host.send(f"rebirth {GROUP} {NODE}")
        host.wait_for(lambda ev: [e for e in ev[n:] if e["type"] == "DBIRTH"][1:], 15,
                      "the births again")
        again = next(e for e in host.events[n:] if e["type"] == "NBIRTH")
        assert again["seq"] == 0 and again["bdSeq"] == nbirth["bdSeq"]
        m = len(host.events)
        host.wait_for(lambda ev: resolved(ev[m:]), 15, "data after the rebirth")
        assert not any(e.get("unknown_alias") for e in host.events)

        edge.send_signal(signal.SIGKILL)
        edge.wait(10)
        death = host.wait_for(lambda ev: next((e for e in ev if e["type"] == "NDEATH"), None),
                              30, "the NDEATH (the will) after SIGKILL")
        assert death["bdSeq"] == nbirth["bdSeq"]
        k = len(host.events)
        sup.start("edge-again", edge_cmd, lambda: True)
        reborn = host.wait_for(lambda ev: next((e for e in ev[k:] if e["type"] == "NBIRTH"),
                                               None), 30, "the NBIRTH after the restart")
        assert reborn["bdSeq"] == (nbirth["bdSeq"] + 1) % 256
        plant.send_signal(signal.SIGTERM)
    finally:
        host.close()
        sup.stop_all()

