"""A simulated plant read by our edge agent as a Sparkplug B edge node, our gateway as its
primary host: the configs, and what the outbox and the store hold (for the Sparkplug
end-to-end tests)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import yaml

from shopfloor.contract import decode_batch
from shopfloor.supervisor import free_port
from shopfloor.up import StackFiles, write_configs

GROUP = "acme-plant1"
NODE = "edge-1"
HOST_ID = "shopfloor-gw"
SHIFT_S = 50
SCENARIO = {
    "seed": 5,
    "enterprise": {"id": "acme", "name": "Acme Precision"},
    "site": {"id": "plant1", "name": "Plant 1"},
    "timeline": {"lead_in_s": 5, "duration_s": SHIFT_S, "lead_out_s": 3},
    "defaults": {
        "ideal_cycle_time_s": 0.5, "speed_factor": 1.15, "reject_rate": 0.08,
        "durations_s": {"PRODUCING": [3, 7], "IDLE": [1, 3], "DOWN": [1.5, 4],
                        "SETUP": [1, 3], "PLANNED_STOP": [1, 3]},
    },
    "areas": [{"id": "machining", "name": "Machining", "lines": [
        {"id": "line1", "name": "Line 1", "machines": [
            {"id": "cnc-01", "protocol": "opcua", "port": 1},
            {"id": "press-01", "protocol": "modbus", "port": 2,
             "ideal_cycle_time_s": 0.4, "speed_factor": 1.3}]}]}],
}
MACHINES = ["acme/plant1/machining/line1/cnc-01", "acme/plant1/machining/line1/press-01"]


def sparkplug_stack(workdir: Path, mqtt_port: int, *, primary_host: bool = True,
                    gateway_mapping: list[dict[str, Any]] | None = None) -> StackFiles:
    """The stack's configs with the edge as Sparkplug node ``GROUP/NODE`` (waiting for
    ``HOST_ID`` if ``primary_host``) and the gateway ingesting Sparkplug as that host."""
    files = write_configs(workdir, SCENARIO, mqtt_port=mqtt_port, http_port=free_port(),
                          share_group=None)
    edge = yaml.safe_load(files.edge.read_text())
    edge["sparkplug"] = {"group_id": GROUP, "node_id": NODE,
                         **({"primary_host_id": HOST_ID} if primary_host else {})}
    edge["publish"] = {"heartbeat_s": 2.0}
    files.edge.write_text(yaml.safe_dump(edge, sort_keys=False))
    gateway = yaml.safe_load(files.gateway.read_text())
    gateway["sparkplug"] = {
        "host_id": HOST_ID, "rebirth_min_interval_s": 1,
        "state_path": str(workdir / "births.db"),
        "devices": gateway_mapping or [{"group": GROUP, "node": NODE, "device": "*",
                                        "asset": "acme/plant1/machining/line1/{device}"}]}
    gateway["completeness"] = {"enabled": False}
    files.gateway.write_text(yaml.safe_dump(gateway, sort_keys=False))
    return files


Row = tuple[str, str, int, Any]  # asset id, tag, ts, value


def outbox_samples(path: Path) -> set[Row]:
    """Every sample the agent committed (acknowledged ones stay in the replay window)."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT device, payload FROM batches").fetchall()
    out = set()
    for device, payload in rows:
        for s in decode_batch(payload).samples:
            out.add((f"acme/plant1/machining/line1/{device}", s.tag, s.ts, s.value))
    return out


def store_samples(path: Path) -> list[tuple[str, str, int, Any, str]]:
    """(asset id, tag, ts, value, quality) of every stored sample."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT s.enterprise||'/'||s.site||'/'||s.area||'/'||s.line||'/'||s.device, s.tag, "
            "x.ts, COALESCE(x.value_str, x.value), x.quality FROM samples x "
            "JOIN series s ON s.id = x.series_id").fetchall()
    return [(a, t, ts, v, q) for a, t, ts, v, q in rows]
