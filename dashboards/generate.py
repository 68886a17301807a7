"""Grafana provisioning for the compose stack, generated as code.

    python dashboards/generate.py           # rewrite the files below
    python dashboards/generate.py --check   # exit 1 if the committed files are out of date

Writes ``provisioning/datasources/influxdb.yaml`` (InfluxDB 2.x queried with InfluxQL
through the bucket's DBRP mapping, as the server reads it; token and bucket from the
environment), ``provisioning/dashboards/shopfloor.yaml`` (the file provider) and three
dashboards in ``json/``: plant overview, line and machine, cluster.

Every query reads what the gateway writes (``shopfloor.storage.influx``): measurement
``samples``, tags ``enterprise, site, area, line, device, tag``, fields ``value``,
``value_str`` (the state name) and ``quality``. Counts come from the cumulative counters
as the sum of ``non_negative_difference`` per interval, so a reset or a wrap loses at most
one interval's parts: exact OEE, losses and the digitalization rates are the server's
(the built-in dashboard on port 8000), not Grafana's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from shopfloor.cli import HelpFormatter
from shopfloor.contract import SIGNAL_PART_COUNT, SIGNAL_REJECT_COUNT, SIGNAL_STATE, State
from shopfloor.storage.influx import MEASUREMENT, PATH_TAGS, quote_ident, quote_literal

HERE = Path(__file__).resolve().parent
DS_UID = "shopfloor-influxdb"
DS = {"type": "influxdb", "uid": DS_UID}
SERVER_URL = "http://localhost:8000/"
STATE_COLOURS = {
    State.PRODUCING: "green", State.IDLE: "yellow", State.DOWN: "red",
    State.SETUP: "blue", State.PLANNED_STOP: "purple", State.NO_SHIFT: "#6e6e6e",
    State.OFFLINE: "#3a3a3a",
}
COUNTERS = (SIGNAL_STATE, SIGNAL_PART_COUNT, SIGNAL_REJECT_COUNT)


# --- InfluxQL ------------------------------------------------------------------------------


q = quote_ident


def where(*conds: str) -> str:
    return " AND ".join((*conds, "$timeFilter"))


def tag_is(signal: str) -> str:
    return f"{q('tag')} = {quote_literal(signal)}"


def var_filter(*keys: str) -> str:
    """``"line" =~ /^$line$/ AND ...`` for Grafana template variables named like the tags."""
    return " AND ".join(f"{q(k)} =~ /^${k}$/" for k in keys)


def group(*keys: str, interval: bool = False, fill: str | None = None) -> str:
    parts = (["time($__interval)"] if interval else []) + [q(k) for k in keys]
    return f" GROUP BY {', '.join(parts)}" + (f" fill({fill})" if fill else "")


def select(expr: str, conds: list[str], tail: str = "") -> str:
    # only the project's own constants and quoted names reach these strings
    return f"SELECT {expr} FROM {q(MEASUREMENT)} WHERE {where(*conds)}{tail}"  # noqa: S608


def increase_per_interval(signal: str, filt: str, *by: str) -> str:
    """Parts (or rejects) counted in each interval, per machine (``by`` includes device:
    a counter only means something per machine)."""
    assert "device" in by
    return select(f"non_negative_difference(max({q('value')}))", [tag_is(signal), filt],
                  group(*by, interval=True, fill="none"))


def last_state(filt: str, *by: str, interval: bool = False) -> str:
    return select(f"last({q('value_str')})", [tag_is(SIGNAL_STATE), filt],
                  group(*by, interval=interval, fill="previous" if interval else None))


# --- Grafana JSON --------------------------------------------------------------------------


def target(query: str, alias: str = "", fmt: str = "time_series", ref: str = "A") -> dict:
    t = {"refId": ref, "datasource": DS, "rawQuery": True, "query": query,
         "resultFormat": fmt}
    if alias:
        t["alias"] = alias
    return t


def state_mappings() -> list[dict[str, Any]]:
    return [{"type": "value", "options": {
        s.value: {"color": c, "index": i, "text": s.value}
        for i, (s, c) in enumerate(STATE_COLOURS.items())}}]


def panel(kind: str, title: str, grid: tuple[int, int, int, int], targets: list[dict],
          description: str = "", **extra: Any) -> dict:
    x, y, w, h = grid
    p = {"type": kind, "title": title, "datasource": DS, "targets": targets,
         "gridPos": {"x": x, "y": y, "w": w, "h": h}}
    if description:
        p["description"] = description
    p.update(extra)
    return p


def stat_states(title: str, grid, query: str) -> dict:
    return panel("stat", title, grid, [target(query, "$tag_line / $tag_device")],
                 "Last state reported by each machine in the time range.",
                 fieldConfig={"defaults": {"mappings": state_mappings(),
                                           "color": {"mode": "fixed", "fixedColor": "text"}},
                              "overrides": []},
                 options={"reduceOptions": {"values": False, "calcs": ["lastNotNull"],
                                            "fields": "/.*/"},
                          "colorMode": "background", "graphMode": "none",
                          "textMode": "value_and_name", "justifyMode": "center",
                          "orientation": "auto"})


def bar_totals(title: str, grid, query: str, alias: str, description: str) -> dict:
    return panel("bargauge", title, grid, [target(query, alias)], description,
                 fieldConfig={"defaults": {"unit": "short", "decimals": 0, "min": 0},
                              "overrides": []},
                 options={"reduceOptions": {"values": False, "calcs": ["sum"], "fields": ""},
                          "orientation": "horizontal", "displayMode": "basic",
                          "showUnfilled": True})


def stat_total(title: str, grid, query: str, alias: str, description: str) -> dict:
    return panel("stat", title, grid, [target(query, alias)], description,
                 fieldConfig={"defaults": {"unit": "short", "decimals": 0}, "overrides": []},
                 options={"reduceOptions": {"values": False, "calcs": ["sum"], "fields": ""},
                          "colorMode": "none", "graphMode": "area", "textMode": "value_and_name",
                          "justifyMode": "auto", "orientation": "auto"})


def bars_over_time(title: str, grid, targets: list[dict], description: str,
                   unit: str = "short") -> dict:
    return panel("timeseries", title, grid, targets, description,
                 fieldConfig={"defaults": {"unit": unit, "custom": {
                     "drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"},
                     "lineWidth": 1}}, "overrides": []},
                 options={"legend": {"displayMode": "table", "placement": "right",
                                     "calcs": ["sum"]},
                          "tooltip": {"mode": "multi", "sort": "desc"}})


def variable(name: str, label: str, parents: tuple[str, ...]) -> dict:
    cond = f" WHERE {var_filter(*parents)}" if parents else ""
    return {"type": "query", "name": name, "label": label, "datasource": DS,
            "query": f"SHOW TAG VALUES FROM {q(MEASUREMENT)} WITH KEY = {q(name)}{cond}",
            "definition": "", "refresh": 2, "multi": True, "includeAll": True,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1, "options": [], "hide": 0}


def dashboard(uid: str, title: str, description: str, panels: list[dict],
              variables: tuple[str, ...], refresh: str = "5s",
              time_from: str = "now-1h") -> dict:
    labels = {"enterprise": "Enterprise", "site": "Site", "area": "Workshop",
              "line": "Line", "device": "Machine"}
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["shopfloor"], "timezone": "browser", "editable": False,
        "graphTooltip": 1, "refresh": refresh, "schemaVersion": 39, "version": 1,
        "time": {"from": time_from, "to": "now"},
        "links": [
            {"type": "dashboards", "tags": ["shopfloor"], "asDropdown": False,
             "title": "shopfloor", "includeVars": True, "keepTime": True},
            {"type": "link", "title": "OEE, losses, rates: built-in dashboard",
             "url": SERVER_URL, "targetBlank": True, "icon": "external link"},
        ],
        "templating": {"list": [variable(v, labels[v], variables[:i])
                                for i, v in enumerate(variables)]},
        "annotations": {"list": []},
        "panels": panels,
    }


# --- the three views -----------------------------------------------------------------------


def overview() -> dict:
    f = var_filter("enterprise", "site")
    return dashboard(
        "shopfloor-overview", "Plant overview",
        "Every machine's live state, parts and rejects, from the samples in InfluxDB.",
        [
            stat_states("Machine state", (0, 0, 24, 6), last_state(f, "line", "device")),
            bar_totals("Parts made per machine", (0, 6, 12, 9),
                       increase_per_interval(SIGNAL_PART_COUNT, f, "line", "device"),
                       "$tag_line / $tag_device",
                       "Increase of each part counter over the time range."),
            bar_totals("Rejects per machine", (12, 6, 12, 9),
                       increase_per_interval(SIGNAL_REJECT_COUNT, f, "line", "device"),
                       "$tag_line / $tag_device",
                       "Increase of each reject counter over the time range."),
            bars_over_time("Parts per interval", (0, 15, 24, 9),
                           [target(increase_per_interval(SIGNAL_PART_COUNT, f, "device"),
                                   "$tag_device")],
                           "Parts made in each interval, stacked by machine."),
        ],
        ("enterprise", "site"))


def line_view() -> dict:
    f = var_filter("enterprise", "site", "line", "device")
    signals = (f"{q('tag')} !~ /^({'|'.join(COUNTERS)})$/")
    return dashboard(
        "shopfloor-line", "Line and machine",
        "State timeline, parts, rejects and every other signal of the chosen machines.",
        [
            panel("state-timeline", "State timeline", (0, 0, 24, 8),
                  [target(last_state(f, "device", interval=True), "$tag_device")],
                  "Each machine's state over time (last state in each interval).",
                  fieldConfig={"defaults": {"mappings": state_mappings(),
                                            "color": {"mode": "thresholds"},
                                            "custom": {"fillOpacity": 85, "lineWidth": 0}},
                               "overrides": []},
                  options={"mergeValues": True, "showValue": "auto", "rowHeight": 0.85,
                           "alignValue": "left", "legend": {"showLegend": True,
                                                            "displayMode": "list",
                                                            "placement": "bottom"}}),
            stat_total("Parts per machine", (0, 8, 12, 5),
                       increase_per_interval(SIGNAL_PART_COUNT, f, "device"), "$tag_device",
                       "Parts made by each machine in the time range."),
            stat_total("Rejects per machine", (0, 13, 12, 5),
                       increase_per_interval(SIGNAL_REJECT_COUNT, f, "device"), "$tag_device",
                       "Rejects of each machine in the time range."),
            bars_over_time("Parts and rejects per interval", (12, 8, 12, 10), [
                target(increase_per_interval(SIGNAL_PART_COUNT, f, "device"),
                       "$tag_device parts", ref="A"),
                target(increase_per_interval(SIGNAL_REJECT_COUNT, f, "device"),
                       "$tag_device rejects", ref="B")],
                "Counts in each interval, by machine."),
            panel("timeseries", "Signals", (0, 18, 24, 9),
                  [target(select(f"mean({q('value')})", [signals, f],
                                 group("device", "tag", interval=True, fill="none")),
                          "$tag_device $tag_tag")],
                  "Every numeric signal other than state and counters (mean per interval).",
                  fieldConfig={"defaults": {"custom": {"drawStyle": "line",
                                                       "showPoints": "never"}},
                               "overrides": []},
                  options={"legend": {"displayMode": "table", "placement": "right",
                                      "calcs": ["lastNotNull", "min", "max"]},
                           "tooltip": {"mode": "multi", "sort": "none"}}),
        ],
        ("enterprise", "site", "line", "device"))


def cluster() -> dict:
    f = var_filter("enterprise")
    seen = select(f"last({q('quality')})", [f], group(*PATH_TAGS))
    return dashboard(
        "shopfloor-cluster", "Cluster",
        "Networked devices seen and data freshness per enterprise, from the raw samples. "
        "OEE, losses and the digitalization, networking and NC rates next to the published "
        "figures are computed by the server: see the built-in dashboard.",
        [
            panel("bargauge", "Networked devices reporting", (0, 0, 12, 8),
                  [target(seen, fmt="table")],
                  "Devices with at least one sample in the time range, per enterprise.",
                  transformations=[
                      {"id": "merge", "options": {}},
                      {"id": "groupBy", "options": {"fields": {
                          "enterprise": {"operation": "groupby", "aggregations": []},
                          "device": {"operation": "aggregate", "aggregations": ["count"]}}}}],
                  fieldConfig={"defaults": {"unit": "short", "decimals": 0, "min": 0},
                               "overrides": []},
                  options={"reduceOptions": {"values": True, "calcs": [], "fields": ""},
                           "orientation": "horizontal", "displayMode": "basic",
                           "showUnfilled": True}),
            bars_over_time("Samples received per enterprise", (12, 0, 12, 8),
                           [target(select(f"count({q('quality')})", [f],
                                          group("enterprise", interval=True, fill="0")),
                                   "$tag_enterprise")],
                           "Samples stored per interval (all tags, all qualities)."),
            panel("table", "Data freshness", (0, 8, 24, 12),
                  [target(seen, fmt="table")],
                  "Time of the newest sample of every device; a device whose newest sample "
                  "is old has stopped reporting.",
                  transformations=[
                      {"id": "merge", "options": {}},
                      {"id": "organize", "options": {
                          "excludeByName": {"last": True},
                          "renameByName": {"Time": "newest sample", "device": "machine",
                                           "area": "workshop"}}},
                      {"id": "sortBy", "options": {"sort": [{"field": "newest sample",
                                                             "desc": False}]}}],
                  fieldConfig={"defaults": {}, "overrides": [
                      {"matcher": {"id": "byName", "options": "newest sample"},
                       "properties": [{"id": "unit", "value": "dateTimeFromNow"}]}]},
                  options={"showHeader": True, "cellHeight": "sm"}),
            panel("text", "OEE and digitalization indicators", (0, 20, 24, 4), [],
                  options={"mode": "markdown", "content": (
                      "OEE (availability, performance, quality), the six big losses and the "
                      "equipment digitalization, networking and key-process NC rates next to "
                      "the published regional and national figures are computed by the "
                      f"shopfloor server: [built-in dashboard]({SERVER_URL}) and its API "
                      "(`/api/v1/oee`, `/api/v1/compare`).")}),
        ],
        ("enterprise",), refresh="10s", time_from="now-15m")


# --- provisioning files --------------------------------------------------------------------


def datasource() -> dict:
    return {"apiVersion": 1, "datasources": [{
        "name": "InfluxDB (shopfloor)", "uid": DS_UID, "type": "influxdb",
        "access": "proxy", "url": "http://influxdb:8086", "isDefault": True,
        "editable": False,
        # InfluxQL on InfluxDB 2.x: the bucket is mapped to a database of the same
        # name by deploy/compose/influxdb-init.sh; the token goes in the header.
        "jsonData": {"version": "InfluxQL", "dbName": "${INFLUX_BUCKET}", "httpMode": "POST",
                     "httpHeaderName1": "Authorization", "timeInterval": "1s"},
        "secureJsonData": {"httpHeaderValue1": "Token ${INFLUX_TOKEN}"},
    }]}


def provider() -> dict:
    return {"apiVersion": 1, "providers": [{
        "name": "shopfloor", "folder": "shopfloor", "type": "file",
        "disableDeletion": True, "allowUiUpdates": False, "updateIntervalSeconds": 30,
        "options": {"path": "/etc/grafana/dashboards", "foldersFromFilesStructure": False},
    }]}


DASHBOARDS = {"overview": overview, "line": line_view, "cluster": cluster}
HEADER = "# Generated by dashboards/generate.py; do not edit.\n"


def render() -> dict[Path, str]:
    """Relative path -> file content of every generated file."""
    out = {
        Path("provisioning/datasources/influxdb.yaml"):
            HEADER + yaml.safe_dump(datasource(), sort_keys=False),
        Path("provisioning/dashboards/shopfloor.yaml"):
            HEADER + yaml.safe_dump(provider(), sort_keys=False),
    }
    for name, make in DASHBOARDS.items():
        out[Path("json") / f"{name}.json"] = json.dumps(make(), indent=2,
                                                        ensure_ascii=False) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python dashboards/generate.py",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=HelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="only compare with the files on disk; exit 1 if any differs")
    ap.add_argument("--out", type=Path, default=HERE, help="directory to write into")
    args = ap.parse_args(argv)
    stale = []
    for rel, text in render().items():
        path = args.out / rel
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(rel))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run python dashboards/generate.py): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
