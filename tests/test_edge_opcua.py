"""OPC UA driver against the project's simulator on loopback: 5,000 monitored items on a
server that accepts 1,000 per call, polling mode within MaxNodesPerRead, node ids in
ns=/nsu=/numeric form and browse paths, absolute- and percent-deadband data-change
filters (percent of the node's EURange)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from services import free_port

from shopfloor.contract import DevicePath, Quality, Sample, State
from shopfloor.edge.config import OpcUaDevice
from shopfloor.edge.opcua.driver import OpcUaDriver
from shopfloor.simulators.machine import Event, Kind
from shopfloor.simulators.opcua_machine import OpcUaMachine, ServerOptions
from shopfloor.simulators.scenario import MachineSpec

pytestmark = pytest.mark.timeout(90)


class Sink:
    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.up = asyncio.Event()

    def sample(self, device: str, sample: Sample) -> None:
        self.samples.append(sample)

    def connected(self, device: str, up: bool, detail: str, since_ns: int) -> None:
        if up:
            self.up.set()

    def latest(self) -> dict[str, Any]:
        return {s.tag: s.value for s in self.samples}

    def history(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for s in self.samples:
            out.setdefault(s.tag, []).append(s.value)
        return out


def machine(options: ServerOptions) -> OpcUaMachine:
    spec = MachineSpec(path=DevicePath("e", "s", "a", "l", "m"), protocol="opcua",
                       host="127.0.0.1", port=free_port(), ideal_cycle_time_s=1,
                       speed_factor=1, reject_rate=0, durations_s={})
    return OpcUaMachine(spec, options)


def device(url: str, tags: list[dict], **kw: Any) -> OpcUaDevice:
    return OpcUaDevice.model_validate({
        "id": "m", "protocol": "opcua", "endpoint": url, "sampling_interval_ms": 50,
        "timeout_s": 5, "path": {"enterprise": "e", "site": "s", "area": "a", "line": "l"},
        "tags": tags, **kw})


@contextlib.asynccontextmanager
async def running(driver: OpcUaDriver, timeout_s: float = 40) -> AsyncIterator[None]:
    """The driver runs for the body (at most ``timeout_s``), then is cancelled."""
    task = asyncio.create_task(driver.run())
    try:
        async with asyncio.timeout(timeout_s):
            yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_for(done: Any) -> None:
    while not done():
        await asyncio.sleep(0.05)


async def run_until(driver: OpcUaDriver, done: Any, timeout_s: float = 40) -> None:
    async with running(driver, timeout_s):
        await wait_for(done)


def test_5000_monitored_items_on_a_server_accepting_1000_per_call():
    asyncio.run(_many())


async def _many() -> None:
    n = 5000
    opts = ServerOptions(extra_variables=n, max_items_per_call=1000)
    sim = machine(opts)
    await sim.start()
    try:
        tags = [{"name": f"v{i}", "node": f"ns=2;s=m.Var{i}"} for i in range(n)]
        sink = Sink()
        driver = OpcUaDriver(device(sim.url, tags), sink, heartbeat_s=600)
        # values are delivered from the session's callback (notify.deliver_directly), so
        # the last items' values can be in before the driver has heard the last call end
        await run_until(driver, lambda: len(sink.latest()) == n and sum(driver.calls) == n)
    finally:
        await sim.stop()
    assert driver.calls == [1000] * 5
    assert opts.largest_call["create_monitored_items"] == 1000
    assert driver.reads == n and driver.errors == 0
    assert sink.latest() == {f"v{i}": float(i) for i in range(n)}


def test_a_call_above_the_limit_is_refused_by_the_simulator():
    """The fallback is used when the server publishes nothing; the simulator enforces."""
    asyncio.run(_refused())


async def _refused() -> None:
    opts = ServerOptions(extra_variables=20, max_items_per_call=10)
    sim = machine(opts)
    await sim.start()
    try:
        from asyncua import Client, ua

        async with Client(sim.url) as client:
            nodes = [client.get_node(f"ns=2;s=m.Var{i}") for i in range(11)]
            with pytest.raises(ua.UaStatusCodeError, match="BadTooManyOperations"):
                await client.read_values(nodes)
            assert await client.read_values(nodes[:10]) == [float(i) for i in range(10)]
    finally:
        await sim.stop()


def test_poll_mode_node_id_forms_and_browse_paths():
    asyncio.run(_poll())


async def _poll() -> None:
    opts = ServerOptions(extra_variables=2500, max_items_per_call=1000)
    sim = machine(opts)
    await sim.start()
    try:
        tags = [{"name": f"v{i}", "node": f"ns=2;s=m.Var{i}"} for i in range(2500)]
        tags += [
            {"name": "by_uri", "node": "nsu=urn:shopfloor:sim;s=m.Var7"},
            {"name": "by_path", "browse_path": "2:m/2:Var9"},
            {"name": "numeric", "node": "i=11705"},  # MaxNodesPerRead
            {"name": "ns2_numeric", "node": "ns=2;i=424242"},  # does not exist
            {"name": "bad_path", "browse_path": "2:m/2:Nope"},
        ]
        sink = Sink()
        driver = OpcUaDriver(device(sim.url, tags, mode="poll", poll_s=0.2), sink,
                             heartbeat_s=600)
        await run_until(driver, lambda: len(sink.latest()) >= 2503)
    finally:
        await sim.stop()
    got = sink.latest()
    assert driver.calls == [1000, 1000, 504]  # all but the unresolvable browse path
    assert opts.largest_call["read"] == 1000
    assert (got["by_uri"], got["by_path"], got["numeric"], got["v2499"]) == (7.0, 9.0, 1000,
                                                                          2499.0)
    # nodes that do not exist: published bad, the status as the value (never read)
    bad = {s.tag: (s.value, s.quality) for s in sink.samples if s.quality == Quality.BAD}
    assert bad == {"ns2_numeric": ("BadNodeIdUnknown", Quality.BAD),
                   "bad_path": ("BadNoMatch", Quality.BAD)}
    assert driver.errors >= 1 and driver.missing == [driver.device.tags[-1]]


def test_absolute_deadband_filter():
    asyncio.run(_deadband())


async def _deadband() -> None:
    sim = machine(ServerOptions(extra_variables=2))
    await sim.start()
    try:
        tags = [{"name": "filtered", "node": "ns=2;s=m.Var0"},
                {"name": "plain", "node": "ns=2;s=m.Var1",
                 "filter": {"trigger": "StatusValue", "deadband_type": "none"}}]
        sink = Sink()
        dev = device(sim.url, tags, filter={"trigger": "StatusValue",
                                            "deadband_type": "absolute", "deadband_value": 5})
        driver = OpcUaDriver(dev, sink, heartbeat_s=600)
        async with running(driver, 20):
            await wait_for(lambda: len(sink.latest()) == 2)
            for v in (2.0, 4.0, 20.0):  # 2 and 4 are within 5 of 0; 20 is not
                await sim.write_extra(0, v)
                await sim.write_extra(1, v + 1)
                await asyncio.sleep(0.3)  # > sampling interval: each write is sampled
            await wait_for(lambda: sink.latest() == {"filtered": 20.0, "plain": 21.0})
    finally:
        await sim.stop()
    assert sink.history() == {"filtered": [0.0, 20.0], "plain": [1.0, 3.0, 5.0, 21.0]}


def test_percent_deadband_is_a_share_of_each_nodes_eu_range():
    asyncio.run(_percent())


async def _percent() -> None:
    # 5 %: Var0's EURange is 0..400 -> 20 units; SpindleLoad's 0..100 -> 5 units.
    # PartCount has no EURange: every change is reported (and counted as an error).
    sim = machine(ServerOptions(extra_variables=1, extra_eu_range=(0.0, 400.0)))
    await sim.start()
    try:
        tags = [{"name": "wide", "node": "ns=2;s=m.Var0"},
                {"name": "load", "node": "ns=2;s=m.SpindleLoad"},
                {"name": "parts", "node": "ns=2;s=m.PartCount"}]
        sink = Sink()
        dev = device(sim.url, tags, filter={"trigger": "StatusValue",
                                            "deadband_type": "percent", "deadband_value": 5})
        driver = OpcUaDriver(dev, sink, heartbeat_s=600)
        async with running(driver, 20):
            await wait_for(lambda: len(sink.latest()) == 3)
            # 10 and 45 are within 20 of the last value; 3 and 12 within 5
            for parts, (wide, load) in enumerate([(10, 3), (35, 9), (45, 12), (0, 4)], 1):
                ts = time.time_ns() // 1000 * 1000
                await sim.write_extra(0, wide)
                await sim.apply(Event(0, Kind.VALUE, State.PRODUCING, 0, 0, load), ts)
                await sim.apply(Event(0, Kind.PART, State.PRODUCING, parts, 0, load), ts)
                await asyncio.sleep(0.3)  # > sampling interval: each write is sampled
            await wait_for(lambda: sink.latest() == {"wide": 0.0, "load": 4.0, "parts": 4})
    finally:
        await sim.stop()
    assert sink.history() == {"wide": [0.0, 35.0, 0.0], "load": [0.0, 9.0, 4.0],
                      "parts": [0, 1, 2, 3, 4]}
    assert driver.errors == 1  # PartCount: no EURange


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
def test_limit_not_published_is_found_by_halving(mode):
    asyncio.run(_halving(mode))


async def _halving(mode: str) -> None:
    opts = ServerOptions(extra_variables=25, max_items_per_call=10, publish_limits=False)
    sim = machine(opts)
    await sim.start()
    try:
        tags = [{"name": f"v{i}", "node": f"ns=2;s=m.Var{i}"} for i in range(25)]
        sink = Sink()
        driver = OpcUaDriver(device(sim.url, tags, mode=mode, poll_s=0.2), sink,
                             heartbeat_s=600)
        await run_until(driver, lambda: len(sink.latest()) == 25, 20)
    finally:
        await sim.stop()
    kind = "create_monitored_items" if mode == "subscribe" else "read"
    assert opts.largest_call[kind] == 25  # the fallback (1000 per call) was tried first...
    assert driver.calls == [6, 6, 6, 6, 1]  # ...refused; 25 -> 12 -> 6 per call
    assert sink.latest() == {f"v{i}": float(i) for i in range(25)}
