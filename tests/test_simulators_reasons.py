"""PLC stop reasons in the simulators: a scenario's ``stop_reasons`` give each stop of a
state one of its codes (seeded) without changing the run; the generated edge config
maps them; the truth log records them and ``Truth.pareto`` sums them."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import replace

from shopfloor.contract import NO_REASON, DevicePath, State
from shopfloor.demo.configs import edge_config_from_scenario
from shopfloor.edge.config import EdgeConfig
from shopfloor.simulators.machine import Kind, MachineModel
from shopfloor.simulators.scenario import (
    DEFAULT_DURATIONS,
    MachineSpec,
    Scenario,
    StopReasons,
    Timeline,
)
from shopfloor.simulators.truth import load_truth
from shopfloor.simulators.truth_log import TruthWriter

TIMELINE = Timeline(lead_in_s=3, duration_s=600, lead_out_s=3)
REASONS = StopReasons.model_validate({
    "DOWN": [{"code": 11, "reason": "SPINDLE"}, {"code": 12, "reason": "TOOLING"}],
    "IDLE": [{"code": 21, "reason": "STARVED"}]})
PLAIN = MachineSpec(path=DevicePath("acme", "plant1", "machining", "line1", "cnc-01"),
                    protocol="opcua", host="127.0.0.1", port=4840, ideal_cycle_time_s=0.5,
                    speed_factor=1.1, reject_rate=0.05, durations_s=dict(DEFAULT_DURATIONS))


def test_reasons_leave_the_seeded_run_as_it_was_and_go_with_their_states():
    plain = MachineModel(PLAIN, TIMELINE, 3).simulate(TIMELINE.total_s)
    given = MachineModel(replace(PLAIN, stop_reasons=REASONS), TIMELINE, 3).simulate(
        TIMELINE.total_s)
    strip = [dataclasses.replace(e, stop_reason=0) for e in given]
    assert strip == plain
    codes = {11: State.DOWN, 12: State.DOWN, 21: State.IDLE}
    seen = Counter()
    for e in given:
        if e.state in (State.DOWN, State.IDLE):
            assert codes[e.stop_reason] is e.state
            seen[e.stop_reason] += e.kind is Kind.STATE
        else:
            assert e.stop_reason == 0
    assert set(seen) == {11, 12, 21}


def test_the_edge_maps_the_codes_and_the_truth_sums_them(tmp_path):
    doc = {"seed": 1, "enterprise": {"id": "acme"}, "site": {"id": "plant1"},
           "timeline": TIMELINE.model_dump(),
           "areas": [{"id": "machining", "lines": [{"id": "line1", "machines": [
               {"id": "cnc-01", "protocol": "opcua", "port": 4840,
                "stop_reasons": REASONS.model_dump()},
               {"id": "press-01", "protocol": "modbus", "port": 5020,
                "stop_reasons": REASONS.model_dump()},
               {"id": "press-02", "protocol": "modbus", "port": 5021}]}]}]}
    edge = EdgeConfig.model_validate(edge_config_from_scenario(
        doc, agent_id="e", mqtt={}, outbox_path=str(tmp_path / "o.db")))
    tags = {d.id: {t.name: t for t in d.tags} for d in edge.devices}
    for machine in ("cnc-01", "press-01"):
        tag = tags[machine]["stop_reason"]
        assert tag.signal == "stop_reason"
        assert tag.map == {0: NO_REASON, 11: "SPINDLE", 12: "TOOLING", 21: "STARVED"}
    assert "stop_reason" not in tags["press-02"]

    sc = Scenario.model_validate(doc)
    spec = sc.machines()[0]
    writer = TruthWriter(tmp_path / "truth.jsonl")
    writer.scenario(sc, sc.machines(), t0=0, shift_start=0, shift_end=10**12)
    writer.state(spec.asset_id, State.DOWN, 0, 2 * 10**9, (11, "SPINDLE"))
    writer.state(spec.asset_id, State.PRODUCING, 2 * 10**9, 5 * 10**9)
    writer.state(spec.asset_id, State.DOWN, 5 * 10**9, 6 * 10**9, (11, "SPINDLE"))
    writer.state(spec.asset_id, State.IDLE, 6 * 10**9, 9 * 10**9)
    writer.close()
    first = json.loads((tmp_path / "truth.jsonl").read_text().splitlines()[1])
    assert (first["reason"], first["reason_code"]) == ("SPINDLE", 11)
    truth = load_truth(tmp_path / "truth.jsonl")
    assert truth.pareto(spec.asset_id, 10**9, 10**10) == {
        "SPINDLE": {"seconds": 2.0, "count": 2}, None: {"seconds": 3.0, "count": 1}}
