"""Scenario file validation: bad files raise ConfigError naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shopfloor.config import ConfigError
from shopfloor.contract import State
from shopfloor.simulators.scenario import load_scenario

DEMO = Path(__file__).parents[1] / "shopfloor" / "demo" / "scenario.yaml"


def base() -> dict:
    return {
        "seed": 3,
        "enterprise": {"id": "acme", "name": "Acme"},
        "site": {"id": "plant1"},
        "timeline": {"lead_in_s": 1, "duration_s": 10, "lead_out_s": 1},
        "defaults": {"ideal_cycle_time_s": 0.5, "speed_factor": 1.1, "reject_rate": 0.05,
                     "durations_s": {"IDLE": [1, 2]}},
        "areas": [{"id": "machining", "lines": [{"id": "line1", "machines": [
            {"id": "cnc-01", "protocol": "opcua", "port": 4840},
            {"id": "press-01", "protocol": "modbus", "port": 5020, "ideal_cycle_time_s": 0.4,
             "durations_s": {"DOWN": [2, 5]}},
        ]}]}],
    }


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def machine(doc: dict, i: int) -> dict:
    return doc["areas"][0]["lines"][0]["machines"][i]


def test_valid_scenario_resolves_machines(tmp_path):
    sc = load_scenario(write(tmp_path, base()))
    cnc, press = sc.machines()
    assert cnc.asset_id == "acme/plant1/machining/line1/cnc-01"
    assert sc.asset_id("machining", "line1", "cnc-01") == cnc.asset_id
    assert cnc.path.device == "cnc-01" and cnc.path.area == "machining"
    assert (cnc.host, cnc.port, cnc.protocol) == ("127.0.0.1", 4840, "opcua")
    assert cnc.ideal_cycle_time_s == 0.5 and press.ideal_cycle_time_s == 0.4
    assert cnc.durations_s[State.IDLE] == (1, 2)  # from defaults
    assert cnc.durations_s[State.DOWN] == (1.5, 4.0)  # built-in default
    assert press.durations_s[State.DOWN] == (2, 5)  # machine override
    assert sc.timeline.total_s == 12


def test_products_from_defaults_or_the_machine(tmp_path):
    doc = base()
    doc["defaults"]["products"] = [{"id": "A", "ideal_cycle_time_s": 0.5},
                                   {"id": "B", "ideal_cycle_time_s": 0.9}]
    machine(doc, 1)["products"] = [{"id": "P-0815", "ideal_cycle_time_s": 1.5}]
    cnc, press = load_scenario(write(tmp_path, doc)).machines()
    assert [(p.id, p.ideal_cycle_time_s) for p in cnc.products] == [("A", 0.5), ("B", 0.9)]
    assert [p.id for p in press.products] == ["P-0815"]
    assert cnc.ideal_cycle_time("B") == 0.9 and cnc.ideal_cycle_time("X") == 0.5
    assert press.ideal_cycle_time("P-0815") == 1.5
    assert load_scenario(write(tmp_path, base())).machines()[0].products == ()


def test_demo_scenario_is_valid():
    sc = load_scenario(DEMO)
    ms = sc.machines()
    assert [m.protocol for m in ms].count("opcua") == 2
    assert [m.protocol for m in ms].count("modbus") == 3
    assert {m.path.area for m in ms} == {"machining", "assembly"}


def mutate_unknown_key(d):
    machine(d, 0)["prot"] = "opcua"


def mutate_bad_type(d):
    d["timeline"]["duration_s"] = "long"


@pytest.mark.parametrize(("mutate", "key"), [
    (mutate_unknown_key, "areas.0.lines.0.machines.0.prot"),
    (mutate_bad_type, "timeline.duration_s"),
    (lambda d: machine(d, 1).update(protocol="profinet"), "areas.0.lines.0.machines.1.protocol"),
    (lambda d: d["defaults"].update(reject_rate=1.0), "defaults.reject_rate"),
    (lambda d: d["defaults"].update(speed_factor=0), "defaults.speed_factor"),
    (lambda d: machine(d, 0).update(speed_factor=-1), "areas.0.lines.0.machines.0.speed_factor"),
    (lambda d: d["defaults"]["durations_s"].update(IDLE=[3, 1]), "defaults.durations_s.IDLE"),
    (lambda d: d["defaults"]["durations_s"].update(BROKEN=[1, 2]), "defaults.durations_s.BROKEN"),
    (lambda d: machine(d, 1).update(id="cnc-01"), "areas"),
    (lambda d: machine(d, 1).update(port=4840), "areas"),
    (lambda d: machine(d, 0).update(id="cnc/01"), "areas.0.lines.0.machines.0.id"),
    (lambda d: d["areas"][0].update(id="+"), "areas.0.id"),
    (lambda d: d["enterprise"].update(id="a b"), "enterprise.id"),
    (lambda d: d.pop("timeline"), "timeline"),
    (lambda d: machine(d, 0).update(products=[]), "areas.0.lines.0.machines.0.products"),
    (lambda d: d["defaults"].update(products=[{"id": "A", "ideal_cycle_time_s": 1},
                                              {"id": "A", "ideal_cycle_time_s": 2}]),
     "defaults.products"),
    (lambda d: machine(d, 1).update(products=[{"id": "NINE-CHRS", "ideal_cycle_time_s": 1}]),
     "areas.0.lines.0.machines.1.products.0.id"),
    (lambda d: machine(d, 1).update(products=[{"id": "A", "ideal_cycle_time_s": 0}]),
     "areas.0.lines.0.machines.1.products.0.ideal_cycle_time_s"),
])
def test_bad_scenario_names_file_and_key(tmp_path, mutate, key):
    doc = base()
    mutate(doc)
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert str(path) in msg
    assert f"  {key}:" in msg, msg


def test_duplicate_messages_say_what(tmp_path):
    doc = base()
    machine(doc, 1).update(port=4840)
    with pytest.raises(ConfigError, match="port 4840"):
        load_scenario(write(tmp_path, doc))
    doc = base()
    machine(doc, 1).update(id="cnc-01")
    with pytest.raises(ConfigError, match="'cnc-01' is used twice"):
        load_scenario(write(tmp_path, doc))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")


def test_edge_and_registry_configs_map_the_products(tmp_path):
    from shopfloor.demo.configs import edge_config_from_scenario, registry_from_scenario
    from shopfloor.edge.config import EdgeConfig
    from shopfloor.server.registry import RegistryModel

    doc = base()
    machine(doc, 0)["products"] = [{"id": "A", "ideal_cycle_time_s": 0.5},
                                   {"id": "B", "ideal_cycle_time_s": 0.9}]
    doc["defaults"]["products"] = [{"id": "P", "ideal_cycle_time_s": 2}]
    edge = EdgeConfig.model_validate(edge_config_from_scenario(
        doc, agent_id="e", mqtt={"host": "127.0.0.1"}, outbox_path=str(tmp_path / "o.db")))
    cnc, press = ({t.name: t for t in d.tags} for d in edge.devices)
    assert (cnc["product"].signal, cnc["product"].node) == ("product", "ns=2;s=cnc-01.Product")
    reg = press["product"].reg
    assert press["product"].signal == "product"
    assert (reg.address, reg.type, reg.length, reg.word_order) == (7, "string", 4, "ABCD")
    registry = RegistryModel.model_validate(registry_from_scenario(doc))
    eqs = registry.enterprises[0].sites[0].workshops[0].lines[0].equipment
    assert [e.ideal_cycle_times_s for e in eqs] == [{"A": 0.5, "B": 0.9}, {"P": 2.0}]
    # without products: no product tag, no per-product cycle times
    plain = base()
    edge_doc = edge_config_from_scenario(plain, agent_id="e", mqtt={"host": "127.0.0.1"},
                                         outbox_path="o.db")
    assert all(t["name"] != "product" for d in edge_doc["devices"] for t in d["tags"])
    assert all("ideal_cycle_times_s" not in e for e in registry_from_scenario(plain)[
        "enterprises"][0]["sites"][0]["workshops"][0]["lines"][0]["equipment"])


def test_outage_key_per_machine_or_default(tmp_path):
    doc = base()
    doc["defaults"] = {"outage": {"at_s": 20, "duration_s": 8}}
    machine(doc, 1)["outage"] = {"at_s": 5.5, "duration_s": 2}
    specs = load_scenario(write(tmp_path, doc)).machines()
    assert (specs[0].outage.at_s, specs[0].outage.end_s) == (20, 28)
    assert (specs[1].outage.at_s, specs[1].outage.end_s) == (5.5, 7.5)
    machine(doc, 0)["outage"] = {"at_s": 1, "duration_s": 0}
    with pytest.raises(ConfigError, match="duration_s"):
        load_scenario(write(tmp_path, doc))
