"""The compose stack's files are consistent (no Docker engine here: the YAML is parsed).

Every config loads with its service's model; every file the compose file mounts exists;
every command parses with the real ``shopfloor`` CLI and names files that are mounted;
every ``${VAR}`` a config, the compose file or Grafana's provisioning uses is set in
``.env.example`` and passed to the container that reads it; healthchecks probe the ports
the configs open; images are pinned; volumes are named.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

from shopfloor.cli import build_parser
from shopfloor.config import _ENV_RE, load_config
from shopfloor.edge.config import EdgeConfig
from shopfloor.gateway.config import GatewayConfig
from shopfloor.server.config import ServerConfig
from shopfloor.server.registry import Registry
from shopfloor.simulators.scenario import load_scenario

ROOT = Path(__file__).parents[1]
COMPOSE = ROOT / "deploy" / "compose"
PROVISIONING = ROOT / "dashboards" / "provisioning"
ENV_EXAMPLE = {k: v for k, v in (
    line.split("=", 1) for line in (COMPOSE / ".env.example").read_text().splitlines()
    if line and not line.startswith("#"))}
DOC = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = DOC["services"]
SHOPFLOOR = [n for n, s in SERVICES.items() if s.get("image", "").startswith("shopfloor:")]


@pytest.fixture(autouse=True)
def compose_env(monkeypatch):
    for key, value in ENV_EXAMPLE.items():
        monkeypatch.setenv(key, value)


def strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in strings(k) + strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def env_refs(path: Path) -> set[str]:
    """``${NAME}`` without a default in a YAML file's values, as the config loader reads them
    (Compose and Grafana's provisioning expand the same syntax)."""
    return {m.group(1) for s in strings(yaml.safe_load(path.read_text()))
            for m in _ENV_RE.finditer(s) if m.group(2) is None}


def mounts(svc: dict) -> list[tuple[str, PurePosixPath]]:
    """(source, container path) per volume; source is ``./path`` or a named volume."""
    out = []
    for vol in svc.get("volumes", []):
        src, dst, *_ = vol.split(":")
        out.append((src, PurePosixPath(dst)))
    return out


def host_path(svc: dict, container_path: str) -> tuple[str, Path | None]:
    """Where a container path lives: ("bind", host path) or ("volume", None)."""
    p = PurePosixPath(container_path)
    for src, dst in sorted(mounts(svc), key=lambda m: -len(m[1].parts)):
        if p == dst or dst in p.parents:
            if src.startswith("./"):
                return "bind", ROOT / src / p.relative_to(dst)
            return "volume", None
    raise AssertionError(f"{container_path} is on no volume of the service")


def configs() -> tuple[EdgeConfig, GatewayConfig, ServerConfig]:
    return (load_config(COMPOSE / "edge.yaml", EdgeConfig),
            load_config(COMPOSE / "gateway.yaml", GatewayConfig),
            load_config(COMPOSE / "server.yaml", ServerConfig))


def test_every_service_config_loads():
    load_scenario(COMPOSE / "scenario.yaml")
    edge, gw, srv = configs()
    assert edge.mqtt.host == "mosquitto" and edge.mqtt.password is not None
    assert gw.store.influxdb is not None and gw.store.influxdb.version == 2
    assert Registry.load(COMPOSE / srv.registry).get("acme") is not None


def test_every_referenced_file_exists():
    for name, svc in SERVICES.items():
        for src, _ in mounts(svc):
            if src.startswith("./"):
                assert (ROOT / src).exists(), (name, src)
            else:
                assert src in DOC["volumes"], (name, src, "named volume not declared")
        if svc.get("build"):
            assert (ROOT / svc["build"] / "Dockerfile").exists()
        if "env_file" in svc:
            assert svc["env_file"] == ".env"  # made from .env.example, see README
    assert (COMPOSE / ".env.example").exists()


def test_every_command_is_a_real_shopfloor_command():
    assert set(SHOPFLOOR) == {"plant", "edge", "gateway", "server"}
    parser = build_parser()
    for name in SHOPFLOOR:
        svc = SERVICES[name]
        args = parser.parse_args(svc["command"])  # SystemExit on anything unknown
        assert callable(args.func) and args.command == svc["command"][0]
        paths = {k: str(v) for k, v in vars(args).items() if isinstance(v, Path)}
        assert paths, name
        for key, value in paths.items():
            kind, path = host_path(svc, value)
            if key in ("config", "scenario"):  # inputs: mounted from the repo
                assert kind == "bind" and path.is_file(), (name, key, value)
            else:  # outputs: on a named volume, so they survive a restart
                assert kind == "volume", (name, key, value)


def test_environment_variables_are_set_and_read():
    compose_file = ROOT / "docker-compose.yml"
    provisioning = set().union(*(env_refs(p) for p in PROVISIONING.rglob("*.yaml")))
    used = env_refs(compose_file) | provisioning
    for path in COMPOSE.glob("*.yaml"):
        used |= env_refs(path)
    # $$NAME in a healthcheck: expanded by the container's shell (not inside '...')
    used |= set(re.findall(r"(?<!')\$\$([A-Z_][A-Z0-9_]*)", compose_file.read_text()))
    assert used - set(ENV_EXAMPLE) == set(), "used but not in .env.example"
    assert set(ENV_EXAMPLE) - used == set(), "in .env.example but read by nothing"
    # each shopfloor service gets .env, which holds everything its config reads
    for name in SHOPFLOOR:
        assert SERVICES[name]["env_file"] == ".env"
    # Grafana expands ${VAR} in its provisioning from its own environment
    grafana_env = SERVICES["grafana"]["environment"]
    assert provisioning == {"INFLUX_BUCKET", "INFLUX_TOKEN"}
    for var in provisioning:
        assert grafana_env.get(var) == f"${{{var}}}", var


def test_influxdb_grafana_and_services_agree():
    _, gw, srv = configs()
    influx_env = SERVICES["influxdb"]["environment"]
    assert influx_env["DOCKER_INFLUXDB_INIT_BUCKET"] == "${INFLUX_BUCKET}"
    assert influx_env["DOCKER_INFLUXDB_INIT_ORG"] == "${INFLUX_ORG}"
    assert influx_env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == "${INFLUX_TOKEN}"
    # the init script maps the bucket to a database of the same name (InfluxQL reads)
    init = (COMPOSE / "influxdb-init.sh").read_text()
    assert '--db "$DOCKER_INFLUXDB_INIT_BUCKET"' in init
    for cfg in (gw.store.influxdb, srv.store.influxdb):
        assert cfg.url == "http://influxdb:8086"
        assert cfg.bucket == ENV_EXAMPLE["INFLUX_BUCKET"] == cfg.db
        assert cfg.token.get_secret_value() == ENV_EXAMPLE["INFLUX_TOKEN"]
    (ds,) = yaml.safe_load((PROVISIONING / "datasources/influxdb.yaml").read_text())["datasources"]
    assert ds["url"] == "http://influxdb:8086" and ds["jsonData"]["dbName"] == "${INFLUX_BUCKET}"
    assert ds["secureJsonData"]["httpHeaderValue1"] == "Token ${INFLUX_TOKEN}"
    # Grafana's mounts hold the provisioning and the dashboards its provider reads
    grafana = SERVICES["grafana"]
    provider = yaml.safe_load((PROVISIONING / "dashboards/shopfloor.yaml").read_text())
    kind, path = host_path(grafana, provider["providers"][0]["options"]["path"])
    assert kind == "bind" and sorted(p.name for p in path.glob("*.json")) == \
        ["cluster.json", "line.json", "overview.json"]
    kind, path = host_path(grafana, "/etc/grafana/provisioning/datasources/influxdb.yaml")
    assert kind == "bind" and path.is_file()
    kind, path = host_path(grafana, grafana["environment"]
                           ["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert kind == "bind" and path.is_file()
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD}"
    assert "3000:3000" in grafana["ports"]
    assert grafana["depends_on"]["influxdb"]["condition"] == "service_healthy"


def test_healthchecks_probe_what_the_configs_open():
    edge, gw, srv = configs()
    scenario = load_scenario(COMPOSE / "scenario.yaml")
    machine_ports = {m.port for a in scenario.areas for ln in a.lines for m in ln.machines}

    def probe(name: str) -> str:
        return " ".join(SERVICES[name]["healthcheck"]["test"])

    for name, svc in SERVICES.items():  # every service runs until stopped
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, cond in svc.get("depends_on", {}).items():
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dep], (name, dep)
    assert edge.metrics is not None and gw.metrics is not None
    assert edge.metrics.host == gw.metrics.host == "0.0.0.0"
    assert f"127.0.0.1:{edge.metrics.port}/metrics" in probe("edge")
    assert f"127.0.0.1:{gw.metrics.port}/metrics" in probe("gateway")
    assert "shopfloor_gateway_connected 1.0" in probe("gateway")
    assert f"127.0.0.1:{srv.http.port}/healthz" in probe("server")
    assert f"{srv.http.port}:{srv.http.port}" in SERVICES["server"]["ports"]
    port = int(re.search(r"'127\.0\.0\.1', (\d+)", probe("plant")).group(1))
    assert port in machine_ports


def test_images_are_pinned():
    for name, svc in SERVICES.items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        # a full release: x.y.z, or x.y where the project numbers so (PostgreSQL 10+)
        release = r"\d+\.\d+" if repo == "postgres" else r"\d+\.\d+\.\d+"
        assert repo and re.fullmatch(release, tag), (name, image)
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.M).group(1)
    assert re.search(r":\d+\.\d+", base), base
