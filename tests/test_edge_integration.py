"""Edge agent end to end on loopback: a tiny OPC UA server and Modbus server -> agent ->
real Mosquitto -> a subscriber checking the contract topics, birth/meta retained, and
that nothing read while the broker was down is lost."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from asyncua import Server, ua
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from services import free_port

from shopfloor.contract import DevicePath, decode_batch, subscription
from shopfloor.demo.configs import edge_config_from_scenario
from shopfloor.edge.agent import Agent
from shopfloor.edge.config import EdgeConfig

pytestmark = pytest.mark.timeout(90)

CNC = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")
PRESS = DevicePath("acme", "plant1", "machining", "line1", "press-01")
NAMES = ["NO_SHIFT", "PRODUCING", "IDLE", "DOWN", "SETUP", "PLANNED_STOP"]


class OpcUaMachine:
    """One simulated CNC: the node ids of DESIGN.md, writes carry a SourceTimestamp."""

    def __init__(self, port: int):
        self.port = port
        self.server = Server()

    async def start(self) -> None:
        await self.server.init()
        self.server.set_endpoint(f"opc.tcp://127.0.0.1:{self.port}/")
        idx = await self.server.register_namespace("urn:shopfloor:sim")
        obj = await self.server.nodes.objects.add_object(idx, "cnc-01")
        self.vars = {}
        for name, vt, init in (("State", ua.VariantType.Int32, 0),
                               ("PartCount", ua.VariantType.UInt32, 0),
                               ("RejectCount", ua.VariantType.UInt32, 0),
                               ("SpindleLoad", ua.VariantType.Double, 0.0)):
            self.vars[name] = await obj.add_variable(
                ua.NodeId(f"cnc-01.{name}", idx), name, ua.Variant(init, vt))
        self.types = {"State": ua.VariantType.Int32, "PartCount": ua.VariantType.UInt32,
                      "RejectCount": ua.VariantType.UInt32, "SpindleLoad": ua.VariantType.Double}
        await self.server.start()

    async def write(self, name: str, value: object, ts_ns: int) -> None:
        dt = datetime.fromtimestamp(ts_ns // 1000 / 1e6, UTC)
        await self.vars[name].write_value(ua.DataValue(
            ua.Variant(value, self.types[name]), SourceTimestamp=dt, ServerTimestamp=dt))

    async def stop(self) -> None:
        await self.server.stop()


class ModbusMachine:
    """One simulated press: holding registers 0..6 as in DESIGN.md, unit 1."""

    def __init__(self, port: int):
        self.port = port

    async def start(self) -> None:
        device = SimDevice(id=1, simdata=[SimData(0, count=7, values=0,
                                                  datatype=DataType.REGISTERS)])
        self.server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self.server.serve_forever(background=True)

    async def set(self, state: int, parts: int, rejects: int, load: float) -> None:
        regs = [state, parts >> 16, parts & 0xFFFF, rejects >> 16, rejects & 0xFFFF,
                *struct.unpack(">HH", struct.pack(">f", load))]
        await self.server.async_setValues(1, 16, 0, regs)

    async def stop(self) -> None:
        await self.server.shutdown()


class Collector:
    """Subscribes to every data/status/meta topic and keeps what arrives."""

    def __init__(self, port: int, client_id: str = "collector"):
        self.lock = threading.Lock()
        self.data: list[tuple[str, bytes]] = []
        self.latest: dict[str, bytes] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)  # persistent session: queued while away
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(
            [(subscription(k), 1) for k in ("data", "status", "meta")])
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "collector: no SUBACK"

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            if msg.topic.endswith("/data"):
                self.data.append((msg.topic, msg.payload))
            else:
                self.latest[msg.topic] = msg.payload

    def samples(self, device: DevicePath) -> list:
        with self.lock:
            batches = [decode_batch(p) for t, p in self.data if t == device.topic("data")]
        return [s for b in batches for s in b.samples]

    def seqs(self) -> list[int]:
        with self.lock:
            return [decode_batch(p).seq for _, p in self.data]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained(port: int, topics: list[str], timeout: float = 5.0) -> dict[str, bytes]:
    """What a new subscriber gets as retained messages on ``topics``."""
    got: dict[str, bytes] = {}
    done = threading.Event()

    def on_message(client, userdata, msg) -> None:
        if msg.retain:
            got[msg.topic] = msg.payload
        if set(got) >= set(topics):
            done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="late-subscriber")
    c.on_message = on_message
    c.on_connect = lambda cl, *_: cl.subscribe([(t, 1) for t in topics])
    c.connect("127.0.0.1", port)
    c.loop_start()
    done.wait(timeout)
    c.loop_stop()
    c.disconnect()
    return got


async def wait_for(cond, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def make_config(tmp_path: Path, mqtt_port: int, opc_port: int, mb_port: int) -> EdgeConfig:
    scenario = {"enterprise": {"id": "acme"}, "site": {"id": "plant1"},
                "areas": [{"id": "machining", "lines": [{"id": "line1", "machines": [
                    {"id": "cnc-01", "protocol": "opcua", "port": opc_port},
                    {"id": "press-01", "protocol": "modbus", "port": mb_port}]}]}]}
    raw = edge_config_from_scenario(
        scenario, agent_id="edge-t", mqtt={"port": mqtt_port, "reconnect_min_s": 0.5,
                                           "reconnect_max_s": 1},
        outbox_path=str(tmp_path / "outbox.sqlite"))
    raw["publish"] = {"max_batch_interval_s": 0.05, "heartbeat_s": 30}
    raw["stats_interval_s"] = 5
    return EdgeConfig.model_validate(raw)


def values(samples: list, tag: str) -> list:
    return [s.value for s in samples if s.tag == tag]


def test_agent_end_to_end_with_broker_outage(tmp_path, mosquitto):
    asyncio.run(_end_to_end(tmp_path, mosquitto))


async def _end_to_end(tmp_path, mosquitto):
    opc, press = OpcUaMachine(free_port()), ModbusMachine(free_port())
    await opc.start()
    await press.start()
    collector = Collector(mosquitto.port)
    cfg = make_config(tmp_path, mosquitto.port, opc.port, press.port)
    t0 = time.time_ns() // 1000 * 1000  # OPC UA DateTime: 100 ns; datetime: 1 us
    late_seqs: list[int] = []
    try:
        async with Agent(cfg) as agent:
            # Phase 1: broker up. Both devices publish, state codes mapped to names.
            await opc.write("State", 1, t0 + 1_000_000)
            await opc.write("PartCount", 5, t0 + 2_000_000)
            await press.set(1, 70000, 3, 42.5)
            await wait_for(lambda: "PRODUCING" in values(collector.samples(CNC), "state")
                           and 70000 in values(collector.samples(PRESS), "part_count"),
                           what="first samples")
            cnc = collector.samples(CNC)
            first = next(s for s in cnc if s.tag == "state" and s.value == "PRODUCING")
            assert first.ts == t0 + 1_000_000  # the OPC UA SourceTimestamp, to the microsecond
            assert 5 in values(cnc, "part_count")
            p = collector.samples(PRESS)
            assert values(p, "state")[-1] == "PRODUCING"
            assert values(p, "reject_count")[-1] == 3
            assert values(p, "spindle_load")[-1] == pytest.approx(42.5)
            kept = await asyncio.to_thread(retained, mosquitto.port, [
                d.topic(k) for d in (CNC, PRESS) for k in ("status", "meta")])
            for dev in (CNC, PRESS):  # birth and meta retained
                birth = json.loads(kept[dev.topic("status")])
                assert birth["online"] is True and birth["agent"] == "edge-t"
                meta = json.loads(kept[dev.topic("meta")])
                assert {t["name"] for t in meta["tags"]} == {
                    "state", "part_count", "reject_count", "spindle_load"}
                assert {t["signal"] for t in meta["tags"]} >= {"state", "part_count"}

            # Phase 2: broker down; the machines keep changing. (First let Mosquitto's
            # 1 s autosave persist the collector's session, which SIGKILL would lose.)
            await asyncio.sleep(2.2)
            mosquitto.kill()
            for i in range(1, 21):
                await opc.write("PartCount", 5 + i, t0 + (10 + i) * 1_000_000)
                await press.set(2 + i % 3, 70000 + i, 3, 40.0 + i)
                await asyncio.sleep(0.06)
            await wait_for(lambda: agent.stats()["enqueued"] > agent.stats()["acked"],
                           what="batches held in the outbox")
            assert agent.outbox is not None and agent.outbox.depth > 0

            # Phase 3: broker back; everything read while it was down arrives.
            # The collector's session survives the SIGKILL only as of Mosquitto's last
            # autosave, so a second subscriber joins as soon as the broker is back: what the
            # broker acknowledged reaches one or the other.
            mosquitto.start()
            late = Collector(mosquitto.port, "collector-2")

            def got(dev: DevicePath) -> list:
                return values(collector.samples(dev) + late.samples(dev), "part_count")

            try:
                await wait_for(lambda: 25 in got(CNC) and 70020 in got(PRESS),
                               timeout=30, what="samples read during the outage")
                await wait_for(lambda: agent.stats()["outbox_depth"] == 0, what="drained")
                cnc_counts, press_counts = got(CNC), got(PRESS)
            finally:
                late_seqs = late.seqs()
                late.stop()
            assert set(range(5, 26)) <= set(cnc_counts), "a data change was lost"
            assert set(range(70000, 70021)) <= set(press_counts), "a polled change was lost"
            stats = agent.stats()
            assert stats["acked"] == stats["enqueued"] and stats["dropped"] == 0
    finally:
        collector_seqs = collector.seqs()
        collector.stop()
        await opc.stop()
        await press.stop()
    # Each seq is one batch of one agent: no gaps over the whole run.
    distinct = sorted(set(collector_seqs + late_seqs))
    assert distinct == list(range(1, distinct[-1] + 1))


def test_pending_batches_are_sent_after_restart(tmp_path, mosquitto):
    """Batches committed while the broker was unreachable survive the agent's restart."""
    asyncio.run(_restart(tmp_path, mosquitto))


async def _restart(tmp_path, mosquitto):
    press = ModbusMachine(free_port())
    await press.start()
    opc_port = free_port()  # nothing listens: the OPC UA device stays disconnected
    cfg = make_config(tmp_path, mosquitto.port, opc_port, press.port)
    try:
        mosquitto.kill()
        await press.set(1, 123, 4, 10.0)
        agent = Agent(cfg)
        await agent.start()
        await wait_for(lambda: agent.stats()["enqueued"] >= 4, what="samples in the outbox")
        await agent.stop(ack_timeout_s=0.1)
        mosquitto.start()
        collector = Collector(mosquitto.port)
        try:
            await press.set(1, 124, 4, 10.0)
            async with Agent(cfg) as agent2:
                await wait_for(lambda: {123, 124} <= set(
                    values(collector.samples(PRESS), "part_count")), what="old and new samples")
                await wait_for(lambda: agent2.stats()["outbox_depth"] == 0, what="drain")
            seqs = collector.seqs()
            assert len(set(seqs)) == max(seqs), "seq restarted or skipped across the restart"
        finally:
            collector.stop()
        offline = json.loads(collector.latest[PRESS.topic("status")])
        assert offline["online"] is False  # explicit death on clean shutdown
    finally:
        await press.stop()
