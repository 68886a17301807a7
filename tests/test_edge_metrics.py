"""Prometheus /metrics of the edge agent on loopback: per-device reads and errors, samples,
publish latency, and outbox depth/age growing while the broker is down and draining after."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from services import free_port

from shopfloor.contract import DevicePath
from shopfloor.demo.configs import edge_config_from_scenario
from shopfloor.edge.agent import Agent
from shopfloor.edge.config import EdgeConfig
from shopfloor.simulators.modbus_machine import ModbusMachine
from shopfloor.simulators.scenario import MachineSpec

pytestmark = pytest.mark.timeout(90)


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def until(pred, timeout_s: float = 20) -> None:
    async with asyncio.timeout(timeout_s):
        while not pred():
            await asyncio.sleep(0.1)


def test_metrics_endpoint(tmp_path, mosquitto):
    asyncio.run(_metrics(tmp_path, mosquitto))


async def _metrics(tmp_path, broker) -> None:
    spec = MachineSpec(path=DevicePath("acme", "p1", "a", "l", "press-01"), protocol="modbus",
                       host="127.0.0.1", port=free_port(), ideal_cycle_time_s=1,
                       speed_factor=1, reject_rate=0, durations_s={})
    press = ModbusMachine(spec)
    await press.start()
    scenario = {"enterprise": {"id": "acme"}, "site": {"id": "p1"}, "areas": [{"id": "a", "lines": [
        {"id": "l", "machines": [{"id": "press-01", "protocol": "modbus", "port": spec.port},
                                 {"id": "dead-01", "protocol": "modbus", "port": free_port()}]}]}]}
    raw = edge_config_from_scenario(scenario, agent_id="edge-m", mqtt={"port": broker.port},
                                    outbox_path=str(tmp_path / "ob.sqlite"))
    port = free_port()
    raw |= {"metrics": {"port": port, "refresh_s": 0.2}, "publish": {"heartbeat_s": 0.2}}
    for dev in raw["devices"]:
        dev |= {"timeout_s": 0.3, "reconnect_max_s": 0.5}
    cfg = EdgeConfig.model_validate(raw)
    press_l = (("device", "press-01"), ("protocol", "modbus"))
    dead_l = (("device", "dead-01"), ("protocol", "modbus"))
    try:
        async with Agent(cfg):
            m: dict = {}

            def refreshed(pred):
                def check() -> bool:
                    m.clear()
                    m.update(scrape(port))
                    return pred(m)
                return check

            await until(refreshed(lambda m: m.get(
                ("shopfloor_edge_publish_latency_seconds_count", ()), 0) >= 3
                and m.get(("shopfloor_edge_device_errors_total", dead_l), 0) >= 2))
            assert m[("shopfloor_edge_device_reads_total", press_l)] >= 3
            assert m[("shopfloor_edge_device_errors_total", press_l)] == 0
            assert m[("shopfloor_edge_device_up", press_l)] == 1
            assert m[("shopfloor_edge_device_up", dead_l)] == 0
            assert m[("shopfloor_edge_samples_total", ())] >= 4
            assert m[("shopfloor_edge_samples_per_second", ())] > 0
            assert m[("shopfloor_edge_publish_latency_seconds_sum", ())] > 0

            broker.kill()
            await until(refreshed(lambda m: m[("shopfloor_edge_outbox_depth", ())] > 0
                                  and m[("shopfloor_edge_outbox_age_seconds", ())] > 0.5))
            broker.start()
            await until(refreshed(lambda m: m[("shopfloor_edge_outbox_depth", ())] == 0
                                  and m[("shopfloor_edge_outbox_age_seconds", ())] == 0), 40)
    finally:
        await press.stop()
    with pytest.raises(httpx.TransportError):  # the endpoint is gone with the agent
        scrape(port)
