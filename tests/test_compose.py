"""The compose stack's files are consistent: every config loads with its service's model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shopfloor.config import load_config
from shopfloor.edge.config import EdgeConfig
from shopfloor.gateway.config import GatewayConfig
from shopfloor.server.config import ServerConfig
from shopfloor.server.registry import Registry
from shopfloor.simulators.scenario import load_scenario

ROOT = Path(__file__).parents[1]
COMPOSE = ROOT / "deploy" / "compose"


@pytest.fixture(autouse=True)
def compose_env(monkeypatch):
    for line in (COMPOSE / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            monkeypatch.setenv(key, value)


def test_every_service_config_loads():
    load_scenario(COMPOSE / "scenario.yaml")
    edge = load_config(COMPOSE / "edge.yaml", EdgeConfig)
    assert edge.mqtt.host == "mosquitto" and edge.mqtt.password is not None
    gw = load_config(COMPOSE / "gateway.yaml", GatewayConfig)
    assert gw.store.influxdb is not None and gw.store.influxdb.version == 2
    srv = load_config(COMPOSE / "server.yaml", ServerConfig)
    assert Registry.load(COMPOSE / srv.registry).get("acme") is not None


def test_compose_references_existing_files_and_real_commands():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, svc in doc["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), (name, src)
        cmd = svc.get("command")
        if svc.get("image", "").startswith("shopfloor"):
            assert cmd[0] in {"simulate", "edge", "gateway", "server"}, (name, cmd)
            for i, arg in enumerate(cmd):
                if arg in ("--config", "--scenario"):
                    assert (COMPOSE / Path(cmd[i + 1]).name).exists(), (name, arg)
    assert (ROOT / "Dockerfile").exists()
