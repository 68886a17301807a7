"""A hostile or broken publisher (issue 17, point 8) on a real Mosquitto with the compose
stack's ACL file (deploy/compose/acl) and a password file: an edge user can publish only
under its own devices' topics, whatever it sends; the gateway also rejects a batch whose
agent is not allowed for its topic (`agents`), e.g. one claiming another agent's id."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from services import mosquitto, require
from test_gateway import gateway_cfg, wait_until

from shopfloor.contract import Batch, DevicePath, Sample
from shopfloor.gateway.service import Gateway
from shopfloor.storage.sqlite import SqliteStore

COMPOSE = Path(__file__).parents[1] / "deploy" / "compose"
USERS = {"edge-1": "pw-edge-1-xyz", "edge-2": "pw-edge-2-xyz", "gateway": "pw-gateway-xyz"}
CNC = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")  # edge-1's
ROBOT = DevicePath("acme", "plant2", "assembly", "l9", "robot-1")  # edge-2's
EDGE_2 = "\nuser edge-2\ntopic write shopfloor/v1/acme/plant2/#\n"  # a second edge


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


@pytest.fixture
def broker(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, pw in USERS.items():
        subprocess.run([require("mosquitto_passwd"), "-b", str(passwd), user, pw], check=True)
    acl = tmp_path / "acl"
    acl.write_text((COMPOSE / "acl").read_text() + EDGE_2)
    with mosquitto(tmp_path / "m", f"allow_anonymous false\npassword_file {passwd}\n"
                                   f"acl_file {acl}\n") as b:
        yield b


def test_compose_broker_config_uses_the_acl_and_the_gateway_its_agents():
    conf = (COMPOSE / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "acl_file /mosquitto/config/acl" in conf
    agents = yaml.safe_load((COMPOSE / "gateway.yaml").read_text())["agents"]
    edge = yaml.safe_load((COMPOSE / "edge.yaml").read_text())
    assert edge["mqtt"]["username"] == edge["agent_id"] and edge["agent_id"] in agents
    assert f"user {edge['agent_id']}" in (COMPOSE / "acl").read_text()


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
