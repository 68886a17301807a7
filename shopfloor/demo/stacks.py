"""What ``shopfloor up --scenario FILE`` runs: one plant, or a cluster of enterprises.

A plain scenario file (DESIGN.md "Scenario file") is one enterprise. A *cluster file*
lists several, each its own stack (plant, broker, gateway, edge, enterprise server) that
federates to one cluster server::

    cluster: {id: park, name: "Demo industrial park"}
    region: Tianjin                 # published figures compared to
    enterprises:
      - scenario: acme.yaml         # a scenario file (relative to this file) or inline
        calendar: {...}             # the server's shift calendar (breaks, holidays)
        registry: acme-registry.yaml  # instead of the registry made from the scenario
        extra_equipment:            # or: machines the scenario does not simulate
          - {workshop: machining, line: line1, id: old-lathe, digital: false}
        history: {days: 365, improvement: 0.4}  # a year of history before the live shift

``load_up_file(path)`` reads either kind into a ``ClusterPlan``; ``registry_of(stack)``
is the registry a stack's server reads.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, model_validator

from shopfloor.config import ConfigError, Segment, Strict, load_yaml, parse_config
from shopfloor.server.calendar import CalendarConfig
from shopfloor.server.registry import EquipmentModel, RegistryModel
from shopfloor.simulators.scenario import Named, Scenario

from .configs import registry_from_scenario

BUILTIN_CLUSTER = Path(__file__).parent / "cluster.yaml"


class ExtraEquipment(EquipmentModel):
    """A registry machine that the scenario does not simulate (a legacy machine that
    never publishes, a digital machine not yet networked), on a line of the scenario's
    site (a new line is added to the workshop when ``line`` is not in it)."""

    workshop: Segment
    line: Segment


class History(Strict):
    """History written into the store before the live run (``shopfloor history``)."""

    days: int = Field(0, ge=0, le=400, description="days of history before today")
    improvement: float = Field(
        0.3, ge=0, le=3, description="how much longer stops (DOWN, IDLE, SETUP) were "
                                     "`days` ago than today (0.3: 30 % longer), linearly")


class Stack(Strict):
    """One enterprise: its plant scenario and what its server is told beyond it."""

    scenario: Scenario = Field(description="the plant: a scenario file (relative to this "
                                           "file) or the scenario itself")
    calendar: CalendarConfig | None = Field(
        None, description="the server's shift calendar (default: the simulated shift)")
    registry: Path | None = Field(
        None, description="the server's registry (default: made from the scenario)")
    extra_equipment: list[ExtraEquipment] = Field(
        [], description="registry machines the scenario does not simulate (with workshop "
                        "and line)")
    history: History = History()

    @model_validator(mode="after")
    def _one_registry_source(self) -> Stack:
        if self.registry is not None and self.extra_equipment:
            raise ValueError("give `registry` or `extra_equipment`, not both (add the "
                             "machines to the registry file)")
        return self

    @property
    def enterprise(self) -> str:
        return self.scenario.enterprise.id


class ClusterPlan(Strict):
    """Enterprises to run; with ``cluster`` set, each federates to one cluster server."""

    cluster: Named | None = Field(
        None, description="the cluster (id, name): each enterprise federates to its server")
    region: str = Field("Tianjin", description="published regional figures compared to")
    enterprises: list[Stack] = Field(min_length=1, description="one stack each")

    @model_validator(mode="after")
    def _distinct(self) -> ClusterPlan:
        ids = [s.enterprise for s in self.enterprises]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"enterprise {', '.join(twice)} appears more than once")
        if len(ids) > 1 and self.cluster is None:
            raise ValueError("several enterprises need `cluster: {id: ..., name: ...}`")
        return self


def load_up_file(path: Path | str) -> ClusterPlan:
    """A scenario file or a cluster file; scenario and registry paths inside are
    relative to the file. Raises ``ConfigError`` naming the file and the key."""
    path = Path(path)
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping (a scenario or a cluster file)")
    if "enterprises" not in doc:  # a plain scenario: one enterprise, no cluster
        doc = {"enterprises": [{"scenario": doc}]}
    doc = copy.deepcopy(doc)
    for i, stack in enumerate(doc.get("enterprises") or []):
        if not isinstance(stack, dict):
            continue
        if isinstance(stack.get("scenario"), str):
            file = path.parent / stack["scenario"]
            try:
                stack["scenario"] = load_yaml(file)
            except ConfigError as exc:
                raise ConfigError(f"{path}: enterprises[{i}].scenario: {exc}") from None
        if isinstance(stack.get("registry"), str):
            stack["registry"] = str(path.parent / stack["registry"])
    return parse_config(doc, ClusterPlan, path)


def registry_of(stack: Stack, cluster: Named | None) -> dict[str, Any]:
    """The registry document of a stack's server: its own file, or the scenario's
    machines plus ``extra_equipment``."""
    cluster_doc = {"id": cluster.id, "name": cluster.name or cluster.id} if cluster else None
    if stack.registry is not None:
        doc = load_yaml(stack.registry)
        parse_config(doc, RegistryModel, stack.registry)
        return doc | ({"cluster": cluster_doc} if cluster_doc else {})
    doc = registry_from_scenario(stack.scenario, **({"cluster_id": cluster.id}
                                                    if cluster else {}))
    if cluster_doc:
        doc["cluster"] = cluster_doc
    site = doc["enterprises"][0]["sites"][0]
    for extra in stack.extra_equipment:
        shop = next((w for w in site["workshops"] if w["id"] == extra.workshop), None)
        if shop is None:
            raise ConfigError(f"extra_equipment {extra.id!r}: workshop {extra.workshop!r} "
                              f"is not in the scenario of {stack.enterprise} (it has "
                              f"{', '.join(w['id'] for w in site['workshops'])})")
        line = next((ln for ln in shop["lines"] if ln["id"] == extra.line), None)
        if line is None:
            line = {"id": extra.line, "name": extra.line, "equipment": []}
            shop["lines"].append(line)
        if any(e["id"] == extra.id for e in line["equipment"]):
            raise ConfigError(f"extra_equipment {extra.id!r}: already on line {extra.line}")
        line["equipment"].append(extra.model_dump(exclude={"workshop", "line"},
                                                  exclude_none=True))
    parse_config(doc, RegistryModel, "the registry made from the scenario")
    return doc


def scenario_doc(stack: Stack) -> dict[str, Any]:
    """The stack's scenario as a document (``shopfloor simulate --scenario`` reads it)."""
    return yaml.safe_load(yaml.safe_dump(stack.scenario.model_dump(mode="json",
                                                                   exclude_none=True)))
