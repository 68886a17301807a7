"""What ``shopfloor up --scenario`` reads (issue 16): a plain scenario is one enterprise;
a cluster file lists several, each with a calendar, a registry or machines the scenario
does not simulate; mistakes are named with the file and the key."""

from __future__ import annotations

import pytest
import yaml

from shopfloor.config import ConfigError
from shopfloor.demo.configs import registry_from_scenario
from shopfloor.demo.stacks import BUILTIN_CLUSTER, load_up_file, registry_of
from shopfloor.server.digitalization import counts as equipment_counts
from shopfloor.server.registry import Registry
from shopfloor.up import DEMO_SCENARIO


def test_a_plain_scenario_is_one_enterprise_without_a_cluster():
    plan = load_up_file(DEMO_SCENARIO)
    assert plan.cluster is None and [s.enterprise for s in plan.enterprises] == ["acme"]
    stack = plan.enterprises[0]
    assert registry_of(stack, None) == registry_from_scenario(stack.scenario)
    assert stack.history.days == 0 and stack.calendar is None


def registry(tmp_path, doc: dict) -> Registry:
    path = tmp_path / f"{doc['enterprises'][0]['id']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return Registry.load(path)


def test_the_built_in_cluster_has_three_enterprises_of_different_maturity(tmp_path):
    plan = load_up_file(BUILTIN_CLUSTER)
    assert plan.cluster is not None and plan.cluster.id == "demo-park"
    counts = {}
    for stack in plan.enterprises:
        reg = registry(tmp_path, registry_of(stack, plan.cluster))
        assert reg.root.id == "demo-park"
        c = equipment_counts(reg, reg.root, {}, 0, 1)
        counts[stack.enterprise] = (c.digital, c.equipment, c.key_process_nc, c.key_process)
        assert stack.history.days == 365
    # digital of all, NC of key-process machines: legacy machines and Modbus presses
    assert counts == {"acme": (5, 5, 2, 5), "bolt": (3, 4, 2, 4), "cast": (1, 3, 0, 2)}


def write(tmp_path, doc: dict, name: str = "plant.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def cluster_doc(**stack) -> dict:
    return {"cluster": {"id": "park"}, "enterprises": [
        {"scenario": str(DEMO_SCENARIO), **stack}]}


def test_a_calendar_a_registry_file_and_relative_paths(tmp_path):
    reg = registry_from_scenario(load_up_file(DEMO_SCENARIO).enterprises[0].scenario)
    reg["enterprises"][0]["sites"][0]["workshops"][0]["lines"][0]["equipment"].append(
        {"id": "saw", "digital": False})
    write(tmp_path, reg, "acme-registry.yaml")
    calendar = {"timezone": "Asia/Shanghai", "weekly": {"mon": [
        {"start": "08:00", "end": "17:00", "breaks": [{"start": "12:00", "end": "13:00"}]}]}}
    plan = load_up_file(write(tmp_path, cluster_doc(registry="acme-registry.yaml",
                                                    calendar=calendar)))
    stack = plan.enterprises[0]
    assert stack.calendar is not None and stack.calendar.weekly["mon"][0].breaks
    doc = registry_of(stack, plan.cluster)
    assert doc["cluster"]["id"] == "park"
    line = doc["enterprises"][0]["sites"][0]["workshops"][0]["lines"][0]
    assert line["equipment"][-1] == {"id": "saw", "digital": False}


def test_extra_equipment_on_a_new_line_of_a_workshop(tmp_path):
    plan = load_up_file(write(tmp_path, cluster_doc(extra_equipment=[
        {"workshop": "assembly", "line": "manual", "id": "bench", "digital": False}])))
    shops = registry_of(plan.enterprises[0], plan.cluster)["enterprises"][0]["sites"][0][
        "workshops"]
    lines = {ln["id"]: ln for w in shops if w["id"] == "assembly" for ln in w["lines"]}
    assert [e["id"] for e in lines["manual"]["equipment"]] == ["bench"]


@pytest.mark.parametrize("doc, message", [
    (cluster_doc(extra_equipment=[{"workshop": "paint", "line": "l", "id": "x"}]),
     r"workshop 'paint' is not in the scenario of acme \(it has machining, assembly\)"),
    (cluster_doc(extra_equipment=[{"workshop": "machining", "line": "line1",
                                   "id": "cnc-01"}]), "'cnc-01': already on line line1"),
    (cluster_doc(registry="r.yaml", extra_equipment=[
        {"workshop": "machining", "line": "line1", "id": "x"}]), "not both"),
    ({"enterprises": [{"scenario": str(DEMO_SCENARIO)}, {"scenario": str(DEMO_SCENARIO)}],
      "cluster": {"id": "park"}}, "enterprise acme appears more than once"),
    ({"enterprises": [{"scenario": "missing.yaml"}]},
     r"enterprises\[0\]\.scenario: .*missing.yaml: file not found"),
    (cluster_doc(history={"days": 500}), "enterprises.0.history.days"),
    (cluster_doc(calendr={}), "enterprises.0.calendr: unknown key"),
])
def test_mistakes_are_named(tmp_path, doc, message):
    with pytest.raises(ConfigError, match=message):
        plan = load_up_file(write(tmp_path, doc))
        registry_of(plan.enterprises[0], plan.cluster)


def test_several_enterprises_need_a_cluster(tmp_path):
    other = yaml.safe_load(DEMO_SCENARIO.read_text())
    other["enterprise"] = {"id": "bolt"}
    write(tmp_path, other, "bolt.yaml")
    with pytest.raises(ConfigError, match="several enterprises need `cluster"):
        load_up_file(write(tmp_path, {"enterprises": [
            {"scenario": str(DEMO_SCENARIO)}, {"scenario": "bolt.yaml"}]}))
