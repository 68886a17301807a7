"""The README and the generated configuration reference match the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def test_config_reference_is_up_to_date(tmp_path):
    spec = importlib.util.spec_from_file_location("config_reference",
                                                  ROOT / "scripts" / "config_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check"]) == 0, "run python scripts/config_reference.py"
    text = (ROOT / "docs" / "CONFIG.md").read_text()
    # a few keys from each service, so a silent gap in the walk shows
    for key in ("`timeline.duration_s`", "`devices[].tags[].register.word_order`",
                "`store.influxdb.bucket`", "`share_group`", "`oee.calendar.weekly.<name>[].start`",
                "`auth.tokens[].scopes`", "`enterprises[].sites[].workshops[].lines[].id`"):
        assert key in text, key
    stale = tmp_path / "CONFIG.md"
    stale.write_text(text.replace("`share_group`", "`shared_group`"))
    assert mod.main(["--check", "--out", str(stale)]) == 1


def test_readme_names_files_that_exist():
    paths = set(re.findall(r"`((?:deploy|dashboards|docs|edge|gateway|server|shopfloor|scripts"
                           r"|benchmarks)/[\w./-]+)`", README))
    paths |= set(re.findall(r"\]\(((?:docs|deploy)/[\w./-]+)\)", README))
    assert len(paths) > 10
    for p in sorted(paths):
        assert (ROOT / p).exists(), p
    for shot in ("overview", "line", "cluster"):
        assert f"docs/screenshots/{shot}.png" in README


def test_readme_compose_section_matches_the_compose_file():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    env = (ROOT / "deploy" / "compose" / ".env.example").read_text()
    for service, url in (("server", "http://localhost:8000/"),
                         ("grafana", "http://localhost:3000/")):
        port = url.rsplit(":", 1)[1].strip("/")
        assert f"{port}:{port}" in compose[service]["ports"] and url in README
    for var in ("GRAFANA_ADMIN_USER", "GRAFANA_ADMIN_PASSWORD", "MQTT_EDGE_PASSWORD",
                "MQTT_GATEWAY_PASSWORD"):
        assert f"{var}=" in env and var in README
    assert "cp deploy/compose/.env.example .env" in README
    assert compose["mosquitto"]["image"] in README  # the mosquitto_passwd command
