"""Edge config for the machines of a simulator scenario (DESIGN.md "Scenario file").

``edge_config_from_scenario(scenario, agent_id=..., mqtt=..., outbox_path=...)`` returns a
plain dict that ``EdgeConfig.model_validate`` accepts (and that can be dumped as YAML).
"""

from __future__ import annotations

from typing import Any

# Device state codes of the simulated machines (DESIGN.md "Simulated machines").
STATE_MAP = {0: "NO_SHIFT", 1: "PRODUCING", 2: "IDLE", 3: "DOWN", 4: "SETUP",
             5: "PLANNED_STOP"}
DEFAULT_HOST = "127.0.0.1"


def _id(node: Any) -> str:
    return node["id"] if isinstance(node, dict) else str(node)


def _opcua_tags(machine: str, product: bool = False) -> list[dict[str, Any]]:
    """The simulator's variables; ``product``: also its ``Product`` (machines with products)."""
    return [
        {"name": "state", "signal": "state", "map": dict(STATE_MAP),
         "node": f"ns=2;s={machine}.State"},
        {"name": "part_count", "signal": "part_count", "bits": 32,
         "node": f"ns=2;s={machine}.PartCount"},
        {"name": "reject_count", "signal": "reject_count", "bits": 32,
         "node": f"ns=2;s={machine}.RejectCount"},
        {"name": "spindle_load", "unit": "%", "node": f"ns=2;s={machine}.SpindleLoad"},
    ] + ([{"name": "product", "signal": "product", "node": f"ns=2;s={machine}.Product"}]
         if product else [])


def _modbus_tags(product: bool = False) -> list[dict[str, Any]]:
    """The simulator's registers; ``product``: also its product id (registers 7-10)."""
    def reg(address: int, type_: str) -> dict[str, Any]:
        return {"table": "holding", "address": address, "type": type_, "word_order": "ABCD"}

    return [
        {"name": "state", "signal": "state", "map": dict(STATE_MAP),
         "register": reg(0, "uint16")},
        {"name": "part_count", "signal": "part_count", "bits": 32,
         "register": reg(1, "uint32")},
        {"name": "reject_count", "signal": "reject_count", "bits": 32,
         "register": reg(3, "uint32")},
        {"name": "spindle_load", "unit": "%", "register": reg(5, "float32")},
    ] + ([{"name": "product", "signal": "product",
           "register": {**reg(7, "string"), "length": 4}}] if product else [])


def edge_config_from_scenario(scenario: dict[str, Any], *, agent_id: str, mqtt: dict[str, Any],
                              outbox_path: str) -> dict[str, Any]:
    """Every machine of the scenario becomes a device of one edge agent."""
    enterprise, site = _id(scenario["enterprise"]), _id(scenario["site"])
    default_host = scenario.get("host") or DEFAULT_HOST
    default_products = (scenario.get("defaults") or {}).get("products")
    devices: list[dict[str, Any]] = []
    for area in scenario.get("areas") or []:
        for line in area.get("lines") or []:
            for m in line.get("machines") or []:
                machine = str(m["id"])
                host = m.get("host") or default_host
                product = bool(m.get("products") or default_products)
                device: dict[str, Any] = {
                    "id": machine,
                    "path": {"enterprise": enterprise, "site": site,
                             "area": _id(area), "line": _id(line)},
                    "protocol": m["protocol"],
                    "reconnect_max_s": 0.1,  # local simulators: back within 0.1 s of an outage
                }
                if m["protocol"] == "opcua":
                    device.update(endpoint=f"opc.tcp://{host}:{m['port']}",
                                  sampling_interval_ms=50, queue_size=100,
                                  tags=_opcua_tags(machine, product))
                elif m["protocol"] == "modbus":
                    device.update(host=host, port=int(m["port"]), unit=1, poll_s=0.05,
                                  timeout_s=1.0, tags=_modbus_tags(product))
                else:
                    raise ValueError(f"machine {machine}: unknown protocol {m['protocol']!r}")
                devices.append(device)
    return {"agent_id": agent_id, "mqtt": dict(mqtt), "outbox": {"path": str(outbox_path)},
            "devices": devices}
