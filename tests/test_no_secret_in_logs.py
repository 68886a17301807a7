"""No secret in any log line (issue 17, point 8): a whole stack with every secret set —
MQTT passwords (Mosquitto with a password file, anonymous off), the InfluxDB v2 token
(VictoriaMetrics takes the v2 write endpoint), API tokens (plain and as SHA-256) — run
at debug level, used (including refused attempts), stopped; then every log is searched
for each secret."""

from __future__ import annotations

import copy
import subprocess

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from services import mosquitto, require, start_plant_stack, victoria_metrics
from test_e2e import SCENARIO, wait_until

from shopfloor.server.auth import token_hash
from shopfloor.storage.sqlite import SqliteStore
from shopfloor.supervisor import Supervisor, free_port, shopfloor_cmd
from shopfloor.up import write_configs

SECRETS = {"edge_mqtt": "edge-mqtt-pw-7c1f9a", "gateway_mqtt": "gw-mqtt-pw-3b8e2d",
           "influx_token": "influx-token-9d4a6e1f0b", "read_token": "read-api-token-5e2c8f7a",
           "admin_token": "admin-api-token-1a9b3c6d"}


@pytest.mark.timeout(240)
def test_no_configured_secret_appears_in_any_log(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, key in (("edge-1", "edge_mqtt"), ("gateway", "gateway_mqtt")):
        subprocess.run([require("mosquitto_passwd"), "-b", str(passwd), user, SECRETS[key]],
                       check=True)
    scenario = copy.deepcopy(SCENARIO)
    scenario["timeline"] = {"lead_in_s": 2, "duration_s": 15, "lead_out_s": 2}
    with mosquitto(tmp_path / "m", f"allow_anonymous false\npassword_file {passwd}\n"
                                   "log_type all\n") as broker, \
            victoria_metrics(tmp_path / "vm") as vm:
        files = write_configs(tmp_path / "stack", scenario, mqtt_port=broker.port,
                              http_port=free_port(), influxdb={
                                  "version": 2, "url": vm.url, "org": "acme",
                                  "bucket": "shopfloor", "token": SECRETS["influx_token"]})
        for path, user, key in ((files.edge, "edge-1", "edge_mqtt"),
                                (files.gateway, "gateway", "gateway_mqtt")):
            doc = yaml.safe_load(path.read_text())
            doc["mqtt"] |= {"username": user, "password": SECRETS[key]}
            path.write_text(yaml.safe_dump(doc))
        server = yaml.safe_load(files.server.read_text())
        server["auth"] = {"anonymous_read": False, "tokens": [
            {"name": "dashboard", "token": SECRETS["read_token"]},
            {"name": "ops", "sha256": token_hash(SECRETS["admin_token"]),
             "scopes": ["admin"]}]}
        files.server.write_text(yaml.safe_dump(server))
        sup = Supervisor(tmp_path / "logs")
        debug = ["--log-level", "debug"]
        try:
            start_plant_stack(
                sup, files,
                gateway_argv=shopfloor_cmd(*debug, "gateway", "--config", str(files.gateway)),
                edge_argv=shopfloor_cmd(*debug, "edge", "--config", str(files.edge)))
            store = SqliteStore(files.store)
            wait_until(lambda: store.count() > 200, 60, "samples through the whole stack")
            store.close()
            sup.start("server", shopfloor_cmd(*debug, "server", "--config", str(files.server)),
                      lambda: _up(server["http"]["port"]))
            url = f"http://127.0.0.1:{server['http']['port']}"
            for token, want in ((SECRETS["read_token"], 200), (SECRETS["admin_token"], 200),
                                (SECRETS["read_token"] + "x", 401), (None, 401)):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                assert httpx.get(f"{url}/api/v1/assets", headers=headers,
                                 timeout=10).status_code == want
            assert httpx.post(f"{url}/api/v1/registry/reload", timeout=10, headers={
                "Authorization": f"Bearer {SECRETS['admin_token']}"}).status_code == 200
            # a client with a wrong password is refused (and logged by the broker)
            bad = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            bad.username_pw_set("edge-1", SECRETS["edge_mqtt"] + "-wrong")
            answers: list = []
            bad.on_connect = lambda _c, _u, _f, reason, _p: answers.append(reason)
            bad.connect("127.0.0.1", broker.port)
            bad.loop_start()
            wait_until(lambda: answers, 10, "the broker's answer")
            bad.loop_stop()
            assert answers[0].is_failure
        finally:
            sup.stop_all()
    logs = sorted((tmp_path / "logs").glob("*.log")) + [tmp_path / "m" / "mosquitto.log",
                                                       tmp_path / "vm" / "vm.log"]
    text = {p.name: p.read_text(errors="replace") for p in logs}
    # every log has lines, at debug level (httpx, asyncua and pymodbus stay at warning)
    assert all(text.values())
    assert "DEBUG" in text["gateway.log"] and "DEBUG" in text["edge.log"]
    for name, secret in SECRETS.items():
        for log, content in text.items():
            assert secret not in content, (name, log)
    digest = token_hash(SECRETS["admin_token"])
    assert all(digest not in content for content in text.values())


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
