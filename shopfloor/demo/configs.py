"""Configs for the plant a simulator scenario describes: the edge agent that reads its
machines (``edge_config_from_scenario``) and the registry that lists them
(``registry_from_scenario``), for ``shopfloor up``, the tests and the benchmarks.

Both read ``Plant.machines()`` (a scenario's plant), so each machine is seen as the
simulator resolves it (machine keys over ``defaults``); the tags are the simulators'
(DESIGN.md "Simulated machines"), with the simulators' own state codes as value map; a
machine with ``stop_reasons`` also gets a ``stop_reason`` tag whose value map turns its
PLC codes into reason codes (0: ``NO_REASON``).
"""

from __future__ import annotations

from typing import Any

from shopfloor.contract import NO_REASON, SIGNAL_STOP_REASON
from shopfloor.simulators.codes import DEVICE_STATE_CODES
from shopfloor.simulators.scenario import MachineSpec, Plant

# Device state code -> state name, as the simulated machines serve them.
STATE_MAP = {code: state.value for state, code in DEVICE_STATE_CODES.items()}


def opcua_tags(machine: str, product: bool = False) -> list[dict[str, Any]]:
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


def modbus_tags(product: bool = False) -> list[dict[str, Any]]:
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


def stop_reason_tag(m: MachineSpec) -> list[dict[str, Any]]:
    """The ``stop_reason`` tag of a machine with ``stop_reasons`` (none otherwise)."""
    if m.stop_reasons is None:
        return []
    source = ({"node": f"ns=2;s={m.id}.StopReason"} if m.protocol == "opcua" else
              {"register": {"table": "holding", "address": 11, "type": "uint16"}})
    return [{"name": SIGNAL_STOP_REASON, "signal": SIGNAL_STOP_REASON,
             "map": {0: NO_REASON, **m.stop_reasons.codes()}, **source}]


def _device(m: MachineSpec) -> dict[str, Any]:
    p = m.path
    device: dict[str, Any] = {
        "id": m.id,
        "path": {"enterprise": p.enterprise, "site": p.site, "area": p.area, "line": p.line},
        "protocol": m.protocol,
        "reconnect_max_s": 0.1,  # local simulators: back within 0.1 s of an outage
    }
    product = bool(m.products)
    if m.protocol == "opcua":
        device.update(endpoint=f"opc.tcp://{m.host}:{m.port}", sampling_interval_ms=50,
                      queue_size=100, tags=opcua_tags(m.id, product) + stop_reason_tag(m))
    else:
        device.update(host=m.host, port=m.port, unit=1, poll_s=0.05, timeout_s=1.0,
                      tags=modbus_tags(product) + stop_reason_tag(m))
        if m.stop_reasons is not None:  # state and reason in one read (over 7-10)
            device["max_gap_registers"] = 4
    return device


def edge_config_from_scenario(scenario: Plant | dict[str, Any], *, agent_id: str,
                              mqtt: dict[str, Any], outbox_path: str) -> dict[str, Any]:
    """Every machine of the scenario becomes a device of one edge agent (a plain dict that
    ``EdgeConfig.model_validate`` accepts and that can be dumped as YAML)."""
    return {"agent_id": agent_id, "mqtt": dict(mqtt), "outbox": {"path": str(outbox_path)},
            "devices": [_device(m) for m in Plant.of(scenario).machines()]}


def registry_from_scenario(scenario: Plant | dict[str, Any],
                           cluster_id: str = "demo-cluster") -> dict[str, Any]:
    """A registry document for the plant a scenario describes."""
    sc = Plant.of(scenario)
    specs = {m.id: m for m in sc.machines()}

    def equipment(machine_id: str, name: str | None) -> dict[str, Any]:
        spec = specs[machine_id]
        products = {"ideal_cycle_times_s": {p.id: p.ideal_cycle_time_s for p in spec.products}
                    } if spec.products else {}
        return {"id": spec.id, "name": name or spec.id,
                "ideal_cycle_time_s": spec.ideal_cycle_time_s, **products,
                "counter_bits": 32, "digital": True,
                "numerically_controlled": spec.protocol == "opcua", "key_process": True}

    workshops = [{"id": area.id, "name": area.name or area.id, "lines": [
        {"id": line.id, "name": line.name or line.id,
         "equipment": [equipment(m.id, m.name) for m in line.machines]}
        for line in area.lines]} for area in sc.areas]
    ent, site = sc.enterprise, sc.site
    return {
        "cluster": {"id": cluster_id, "name": "Demo cluster"},
        "enterprises": [{
            "id": ent.id, "name": ent.name or ent.id,
            "sites": [{"id": site.id, "name": site.name or site.id,
                       "workshops": workshops}],
        }],
    }
