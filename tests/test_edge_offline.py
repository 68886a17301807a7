"""A device's network outage (simulator servers stopped, the machines running on): the
agent publishes the state signal as OFFLINE when it sees the loss and the real state,
not stamped before the reconnection, when the device answers again; the restarted
servers serve the current counters, so no counter reset is seen."""

from __future__ import annotations

import asyncio
import time

import pytest
from services import free_port
from test_edge_integration import CNC, PRESS, Collector, make_config, wait_for

from shopfloor.contract import Quality, State
from shopfloor.edge.agent import Agent
from shopfloor.simulators.machine import Event, Kind
from shopfloor.simulators.modbus_machine import ModbusMachine
from shopfloor.simulators.opcua_machine import OpcUaMachine
from shopfloor.simulators.scenario import Scenario

pytestmark = pytest.mark.timeout(120)


def specs(opc_port: int, mb_port: int) -> list:
    return Scenario.model_validate({
        "enterprise": {"id": "acme"}, "site": {"id": "plant1"},
        "timeline": {"duration_s": 10},
        "areas": [{"id": "machining", "lines": [{"id": "line1", "machines": [
            {"id": "cnc-01", "protocol": "opcua", "port": opc_port},
            {"id": "press-01", "protocol": "modbus", "port": mb_port}]}]}]}).machines()


async def apply(machines: list, state: State, parts: int) -> None:
    ts = time.time_ns() // 1000 * 1000
    for m in machines:
        await m.apply(Event(0, Kind.STATE, state, parts, 0, 50.0), ts)
        await m.apply(Event(0, Kind.PART, state, parts, 0, 50.0), ts)


def test_loss_publishes_offline_and_recovery_the_real_state(tmp_path, mosquitto):
    asyncio.run(_outage(tmp_path, mosquitto))


async def _outage(tmp_path, mosquitto):
    cnc_spec, press_spec = specs(free_port(), free_port())
    machines = [OpcUaMachine(cnc_spec), ModbusMachine(press_spec)]
    for m in machines:
        await m.start()
    await apply(machines, State.PRODUCING, 5)
    collector = Collector(mosquitto.port)
    cfg = make_config(tmp_path, mosquitto.port, cnc_spec.port, press_spec.port)
    try:
        async with Agent(cfg):
            def states(dev) -> list:
                return [s for s in collector.samples(dev) if s.tag == "state"]

            await wait_for(lambda: all(any(s.value == "PRODUCING" for s in states(d))
                                       for d in (CNC, PRESS)), what="PRODUCING")
            t_off = time.time_ns()
            await asyncio.gather(*(m.go_offline() for m in machines))
            await apply(machines, State.DOWN, 7)  # the machines run on in the outage
            await wait_for(lambda: all(any(s.value == "OFFLINE" for s in states(d))
                                       for d in (CNC, PRESS)), what="OFFLINE")
            t_on = time.time_ns()
            await asyncio.gather(*(m.go_online() for m in machines))
            await wait_for(lambda: all(states(d)[-1].value == "DOWN" for d in (CNC, PRESS)),
                           what="the real state after the outage")
            for dev in (CNC, PRESS):
                seen = states(dev)
                i = next(i for i, s in enumerate(seen) if s.value == "OFFLINE")
                off, after = seen[i], seen[i + 1:]
                assert off.quality is Quality.BAD and off.ts >= t_off
                assert [s.value for s in after] == ["DOWN"], (dev, seen)
                # the DOWN was written during the outage; it is stamped no earlier than
                # the reconnection, so the outage stays OFFLINE
                assert after[0].ts >= t_on and after[0].quality is Quality.GOOD
                await wait_for(lambda dev=dev: 7 in [s.value for s in collector.samples(dev)
                                                     if s.tag == "part_count"], what="parts")
                counts = [s.value for s in collector.samples(dev) if s.tag == "part_count"]
                assert counts == sorted(counts) and 0 not in counts, counts  # no reset
    finally:
        collector.stop()
        for m in machines:
            await m.stop()
