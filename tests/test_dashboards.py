"""Grafana provisioning (dashboards/): the committed files are the generator's output, and
every panel's query reads what the gateway really writes.

The schema test runs the demo plant, an edge agent and the gateway (real processes) into a
real InfluxDB 1.6 over loopback, then executes every panel and variable query with
Grafana's macros substituted the way Grafana does, and checks that each names only
measurements, fields, tags and tag values present in the database and returns data.
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from shopfloor.contract import State
from shopfloor.supervisor import Supervisor, port_open, shopfloor_cmd
from shopfloor.up import DEMO_SCENARIO, write_configs

ROOT = Path(__file__).parents[1]
DASHBOARDS = ROOT / "dashboards"


def load_generator():
    spec = importlib.util.spec_from_file_location("dashboards_generate",
                                                  DASHBOARDS / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def committed_dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((DASHBOARDS / "json").glob("*.json"))}


def panel_queries(dash: dict) -> list[tuple[str, str]]:
    return [(p["title"], t["query"]) for p in dash["panels"] for t in p.get("targets", [])]


def variable_queries(dash: dict) -> list[tuple[str, str]]:
    return [(f"variable {v['name']}", v["query"]) for v in dash["templating"]["list"]]


# --- generator ----------------------------------------------------------------------------


def test_committed_files_are_the_generators_output(tmp_path):
    gen = load_generator()
    rendered = gen.render()
    assert {str(p) for p in rendered} == {
        str(p.relative_to(DASHBOARDS)) for p in DASHBOARDS.rglob("*")
        if p.is_file() and p.suffix in (".json", ".yaml")}
    for rel, text in rendered.items():
        assert (DASHBOARDS / rel).read_text() == text, f"{rel}: run python dashboards/generate.py"
    assert gen.main(["--check"]) == 0
    # --check notices a stale file
    assert gen.main(["--out", str(tmp_path)]) == 0
    stale = tmp_path / "json" / "line.json"
    stale.write_text(stale.read_text().replace("part_count", "parts"))
    assert gen.main(["--check", "--out", str(tmp_path)]) == 1


def test_three_views_on_the_provisioned_datasource():
    ds = yaml.safe_load((DASHBOARDS / "provisioning/datasources/influxdb.yaml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "influxdb" and source["jsonData"]["version"] == "InfluxQL"
    provider = yaml.safe_load((DASHBOARDS / "provisioning/dashboards/shopfloor.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    dashes = committed_dashboards()
    assert set(dashes) == {"overview", "line", "cluster"}
    assert len({d["uid"] for d in dashes.values()}) == 3
    for dash in dashes.values():
        for p in dash["panels"]:
            if p["type"] != "text":
                assert p["datasource"]["uid"] == source["uid"], p["title"]
                assert p["targets"] and all(t["rawQuery"] for t in p["targets"]), p["title"]
            for m in p.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
                assert set(m["options"]) == {s.value for s in State}, p["title"]
    line = dashes["line"]
    kinds = {p["type"] for p in line["panels"]}
    assert "state-timeline" in kinds and "timeseries" in kinds


def test_counter_queries_group_by_machine():
    """A counter's increase only means something per machine: never mixed across devices."""
    for dash in committed_dashboards().values():
        for title, query in panel_queries(dash):
            if "non_negative_difference" in query:
                assert re.search(r'GROUP BY time\(\$__interval\)(, "\w+")*, "device"', query), \
                    (title, query)


# --- every query against data the gateway wrote ----------------------------------------------

DEVICES_SHOWN = ("cnc-01", "press-01")


def grafana_substitute(query: str, start_ms: int, end_ms: int, values: dict[str, list[str]],
                       chosen: dict[str, list[str]]) -> str:
    """What Grafana's InfluxQL datasource sends: macros and multi-value variables expanded
    (several values become an escaped regex alternation)."""
    query = query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    query = query.replace("$__interval", "1s")
    for name in sorted(values, key=len, reverse=True):
        picked = chosen.get(name, values[name])
        query = query.replace(f"${name}", "(" + "|".join(re.escape(v) for v in picked) + ")")
    assert "$" not in query.replace("$/", "/"), query
    return query


def schema(influxdb) -> dict[str, set[str]]:
    def column(q: str, col: int = 0) -> set[str]:
        res = influxdb.query(q)["results"][0]
        return {row[col] for s in res.get("series", []) for row in s["values"]}

    return {"measurements": column("SHOW MEASUREMENTS"),
            "fields": column("SHOW FIELD KEYS"),
            "tags": column("SHOW TAG KEYS"),
            "signals": column('SHOW TAG VALUES WITH KEY = "tag"', 1),
            "devices": column('SHOW TAG VALUES WITH KEY = "device"', 1)}


@pytest.mark.timeout(240)
def test_every_panel_query_reads_what_the_gateway_writes(tmp_path, mosquitto, influxdb):
    scenario = yaml.safe_load(DEMO_SCENARIO.read_text())
    scenario["timeline"] = {"lead_in_s": 1, "duration_s": 600, "lead_out_s": 1}
    files = write_configs(tmp_path, scenario, mqtt_port=mosquitto.port, http_port=1,
                          influxdb={"version": 1, "url": influxdb.url,
                                    "database": influxdb.database})
    start_ms = time.time_ns() // 10**6 - 60_000
    sup = Supervisor(tmp_path / "logs", out=lambda _line: None)
    try:
        sup.start("plant", shopfloor_cmd("simulate", "--scenario", str(files.scenario)),
                  lambda: all(port_open(p) for p in files.machine_ports))
        sup.start("gateway", shopfloor_cmd("gateway", "--config", str(files.gateway)),
                  lambda: files.store.exists())
        sup.start("edge", shopfloor_cmd("edge", "--config", str(files.edge)),
                  lambda: (tmp_path / "outbox.db").exists())

        def every_series_has_two_points() -> bool:
            res = influxdb.query('SELECT count("quality") FROM "samples" '
                                 'GROUP BY "device", "tag"')["results"][0]
            counts = [s["values"][0][1] for s in res.get("series", [])]
            return len(counts) == 5 * 4 and min(counts) >= 2

        deadline = time.monotonic() + 90
        while not every_series_has_two_points():
            assert time.monotonic() < deadline, "samples did not reach InfluxDB"
            assert not sup.exited(), sup.exited()
            time.sleep(0.5)
    finally:
        sup.stop_all()
    end_ms = time.time_ns() // 10**6

    found = schema(influxdb)
    assert found["measurements"] == {"samples", "sample_writes"}  # the data and its write log
    assert found["signals"] == {"state", "part_count", "reject_count", "spindle_load"}
    names = found["measurements"] | found["fields"] | found["tags"]
    values = {"enterprise": ["acme"], "site": ["plant1"], "area": ["machining", "assembly"],
              "line": ["line1", "line2"], "device": sorted(found["devices"])}
    chosen = {"device": list(DEVICES_SHOWN)}
    checked = 0
    for dash_name, dash in committed_dashboards().items():
        for title, raw in panel_queries(dash) + variable_queries(dash):
            where = f"{dash_name} / {title}"
            # every quoted identifier is a measurement, field or tag the gateway wrote ...
            for ident in re.findall(r'"([^"]+)"', raw):
                assert ident in names, (where, ident, sorted(names))
            # ... and every signal name it filters on is a value of the "tag" tag
            for lit in re.findall(r"\"tag\" = '([^']+)'", raw):
                assert lit in found["signals"], (where, lit)
            for alts in re.findall(r'"tag" !?~ /\^\(([^)]+)\)\$/', raw):
                assert set(alts.split("|")) <= found["signals"], (where, alts)

            query = grafana_substitute(raw, start_ms, end_ms, values, chosen)
            result = influxdb.query(query)["results"][0]
            assert "error" not in result, (where, query, result)
            series = result.get("series", [])
            assert series, f"{where}: no data for {query}"
            for s in series:
                assert any(v is not None for row in s["values"] for v in row[1:]), (where, s)
                device = (s.get("tags") or {}).get("device")
                if device is not None and "$device" in raw:
                    assert device in DEVICES_SHOWN, (where, device)
            checked += 1
    assert checked >= 15
