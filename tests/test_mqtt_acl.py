"""A hostile or broken publisher (issue 17, point 8) on a real Mosquitto with the compose
stack's ACL file (deploy/compose/acl) and a password file: an edge user can publish only
under its own devices' topics, whatever it sends; the gateway also rejects a batch whose
agent is not allowed for its topic (`agents`), e.g. one claiming another agent's id. With
the file's Sparkplug lines in force, a Sparkplug edge node too publishes only as itself."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from services import mosquitto, require
from test_gateway import gateway_cfg, wait_until

from shopfloor.contract import Batch, DevicePath, Sample, alert_topic
from shopfloor.gateway.service import Gateway
from shopfloor.sparkplug.payload import DT, decode_state
from shopfloor.sparkplug.schema import Payload
from shopfloor.storage.sqlite import SqliteStore

COMPOSE = Path(__file__).parents[1] / "deploy" / "compose"
USERS = {"edge-1": "pw-edge-1-xyz", "edge-2": "pw-edge-2-xyz", "gateway": "pw-gateway-xyz",
         "server": "pw-server-xyz", "reader": "pw-reader-xyz"}
CNC = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")  # edge-1's
ROBOT = DevicePath("acme", "plant2", "assembly", "l9", "robot-1")  # edge-2's
EDGE_2 = "\nuser edge-2\ntopic write shopfloor/v1/acme/plant2/#\n"  # a second edge
READER = "\nuser reader\ntopic read shopfloor/v1/#\n"  # sees whatever gets through


def client(port: int, user: str, password: str | None = None) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}",
                    protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password or USERS[user])
    c.received = []  # type: ignore[attr-defined]
    c.on_message = lambda _c, _u, m: c.received.append(m)  # type: ignore[attr-defined]
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def publish(c: mqtt.Client, dev: DevicePath, agent: str, seq: int) -> None:
    payload = Batch(agent, seq, (Sample("state", time.time_ns(), "IDLE"),)).encode()
    c.publish(dev.topic("data"), payload, qos=1).wait_for_publish(10)


def secured_broker(tmp_path: Path, acl_text: str):  # type: ignore[no-untyped-def]
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, pw in USERS.items():
        subprocess.run([require("mosquitto_passwd"), "-b", str(passwd), user, pw], check=True)
    acl = tmp_path / "acl"
    acl.write_text(acl_text)
    return mosquitto(tmp_path / "m", f"allow_anonymous false\npassword_file {passwd}\n"
                                     f"acl_file {acl}\n")


@pytest.fixture
def broker(tmp_path):
    with secured_broker(tmp_path, (COMPOSE / "acl").read_text() + EDGE_2 + READER) as b:
        yield b


def test_compose_broker_config_uses_the_acl_and_the_gateway_its_agents():
    conf = (COMPOSE / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "acl_file /mosquitto/config/acl" in conf
    agents = yaml.safe_load((COMPOSE / "gateway.yaml").read_text())["agents"]
    edge = yaml.safe_load((COMPOSE / "edge.yaml").read_text())
    assert edge["mqtt"]["username"] == edge["agent_id"] and edge["agent_id"] in agents
    assert f"user {edge['agent_id']}" in (COMPOSE / "acl").read_text()
    server = yaml.safe_load((COMPOSE / "server.yaml").read_text())
    assert server["operations"]["alerts"]["mqtt"]["username"] == "server"


@pytest.mark.timeout(60)
def test_the_server_publishes_alerts_only(broker):
    reader, server = client(broker.port, "reader"), client(broker.port, "server")
    try:
        reader.subscribe("shopfloor/v1/#", qos=1)
        time.sleep(0.5)
        publish(server, CNC, "edge-1", 0)  # a device's data: the broker drops it
        alert = alert_topic(CNC.asset_id)
        server.publish(alert, b"{}", qos=1).wait_for_publish(10)
        wait_until(lambda: reader.received, what="the alert")
        time.sleep(0.5)
        assert [m.topic for m in reader.received] == [alert]
    finally:
        for c in (reader, server):
            c.disconnect()
            c.loop_stop()


@pytest.mark.timeout(120)
def test_an_edge_publishes_only_under_its_own_topics(broker, tmp_path):
    agents = yaml.safe_load((COMPOSE / "gateway.yaml").read_text())["agents"]
    cfg = gateway_cfg(broker, tmp_path, agents={**agents, "edge-2": ["acme/plant2/#"]},
                      mqtt={"host": "127.0.0.1", "port": broker.port, "username": "gateway",
                            "password": USERS["gateway"]})
    gw = Gateway(cfg)
    gw.start()
    edge1, edge2 = client(broker.port, "edge-1"), client(broker.port, "edge-2")
    try:
        assert gw.wait_ready(10)
        publish(edge1, CNC, "edge-1", 0)  # its own device: stored
        publish(edge2, CNC, "edge-2", 0)  # edge-1's device: the broker drops it
        publish(edge2, CNC, "edge-1", 1)  # ... and as edge-1: dropped too
        publish(edge2, ROBOT, "edge-1", 2)  # its own topic, claiming edge-1: gateway rejects
        publish(edge2, ROBOT, "edge-2", 0)  # its own: stored (after the others, same client)
        wait_until(lambda: gw.stats().messages_done == 3, what="the three that got through")
        stats = gw.stats()
        assert stats.messages == 3 and stats.rejects == {"agent_not_allowed": 1}
        assert stats.dead_letters == 1
        with SqliteStore(tmp_path / "store.db") as store:
            assert store.count(CNC) == 1 and store.count(ROBOT) == 1
            assert store.seq_ranges() == {"edge-1": [(0, 0)], "edge-2": [(0, 0)]}
        # an edge cannot read the gateway's data subscription, nor another's commands
        spy = client(broker.port, "edge-2")
        spy.subscribe("shopfloor/v1/#", qos=1)
        time.sleep(0.5)
        publish(edge1, CNC, "edge-1", 1)
        wait_until(lambda: gw.stats().messages_done == 4, what="edge-1's next batch")
        assert spy.received == []
        spy.disconnect()
        spy.loop_stop()
        # a wrong password is refused
        bad = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        bad.username_pw_set("edge-1", "wrong")
        answers = []
        bad.on_connect = lambda _c, _u, _f, reason, _p: answers.append(reason)
        bad.connect("127.0.0.1", broker.port)
        bad.loop_start()
        wait_until(lambda: answers, what="the broker's answer")
        bad.loop_stop()
        assert answers[0].is_failure
    finally:
        for c in (edge1, edge2):
            c.disconnect()
            c.loop_stop()
        gw.stop()


def sparkplug(seq: int, metrics: tuple[tuple[str, int, int], ...] = ()) -> bytes:
    p = Payload(timestamp=time.time_ns() // 10**6, seq=seq)
    for name, alias, value in metrics:
        p.metrics.add(name=name, alias=alias, datatype=DT.Int64, long_value=value)
    return p.SerializeToString()


@pytest.mark.timeout(120)
def test_sparkplug_nodes_publish_only_as_themselves_under_the_acl(tmp_path):
    acl = "".join(line[1:] if line.startswith(("#user ", "#topic ")) else line
                  for line in (COMPOSE / "acl").read_text().splitlines(keepends=True))
    group, node = "acme-plant1", "edge-1"
    with secured_broker(tmp_path, acl + EDGE_2) as b:
        cfg = gateway_cfg(b, tmp_path, mqtt={"host": "127.0.0.1", "port": b.port,
                                             "username": "gateway", "password": USERS["gateway"]},
                          sparkplug={"host_id": "shopfloor-gw", "devices": [
                              {"group": group, "node": "*", "device": "*",
                               "asset": "acme/plant1/machining/line1/{device}"}]})
        gw = Gateway(cfg)
        gw.start()
        edge1, edge2 = client(b.port, "edge-1"), client(b.port, "edge-2")
        try:
            assert gw.wait_ready(10)
            edge1.subscribe([("spBv1.0/STATE/shopfloor-gw", 1),
                             (f"spBv1.0/{group}/NCMD/{node}", 1)])
            wait_until(lambda: edge1.received, what="the host's STATE, read by the node")
            assert decode_state(edge1.received[0].payload)[0] is True
            for c, who in ((edge2, node), (edge1, node), (edge2, "edge-2")):
                base = f"spBv1.0/{group}"
                c.publish(f"{base}/NBIRTH/{who}", sparkplug(0), qos=1).wait_for_publish(10)
                c.publish(f"{base}/DBIRTH/{who}/cnc-01", sparkplug(1, (("part_count", 1, 5),)),
                          qos=1).wait_for_publish(10)
                c.publish(f"{base}/DDATA/{who}/cnc-01", sparkplug(2, (("part_count", 1, 6),)),
                          qos=1).wait_for_publish(10)
            # edge-2 as edge-1: dropped by the broker; edge-1 as itself: 3 messages; edge-2
            # as itself: no ACL lines for it under spBv1.0, dropped too
            wait_until(lambda: gw.stats().messages_done == 3, what="edge-1's three messages")
            time.sleep(0.5)
            stats = gw.stats()
            assert stats.messages == 3 and not stats.rejects, stats
            assert stats.sparkplug["births"] == 2 and stats.samples_stored == 2
            # a seq jump: the gateway may write the node's NCMD, which the node reads
            edge1.publish(f"spBv1.0/{group}/DDATA/{node}/cnc-01",
                          sparkplug(9, (("part_count", 1, 7),)), qos=1).wait_for_publish(10)
            wait_until(lambda: any("/NCMD/" in m.topic for m in edge1.received),
                       what="the rebirth request through the ACL")
        finally:
            for c in (edge1, edge2):
                c.disconnect()
                c.loop_stop()
            gw.stop()
