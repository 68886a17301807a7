"""Edge benchmark: ``python -m shopfloor.edge.bench [--seconds 10] ...``.

``main(argv)`` prints tags per second and the agent's CPU seconds per 1,000 tags for
Modbus polling (``--devices`` servers x ``--tags`` holding registers, each polled every
``--poll-s``) and for OPC UA subscriptions (``--opcua-tags`` variables, all changed every
``--change-s`` by the server). The servers run in a child process, so the CPU figure is
the agent side only (drivers, decoding, mapping; no MQTT). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import socket
import time
from typing import Any

from shopfloor.contract import Sample

from .config import ModbusDevice, OpcUaDevice
from .modbus_driver import ModbusDriver
from .opcua_driver import OpcUaDriver

PATH = {"enterprise": "bench", "site": "s", "area": "a", "line": "l"}


class CountingSink:
    def __init__(self) -> None:
        self.samples = 0

    def sample(self, device: str, sample: Sample) -> None:
        self.samples += 1

    def connected(self, device: str, up: bool, detail: str) -> None:
        pass


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


async def _modbus_servers(ports: list[int], tags: int, ready: Any, stop: Any) -> None:
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    servers = []
    for port in ports:
        dev = SimDevice(id=1, simdata=[SimData(0, count=tags, values=7,
                                               datatype=DataType.REGISTERS)])
        srv = ModbusTcpServer(dev, address=("127.0.0.1", port))
        await srv.serve_forever(background=True)
        servers.append(srv)
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.1)
    for srv in servers:
        await srv.shutdown()


async def _opcua_server(port: int, tags: int, change_s: float, ready: Any, stop: Any) -> None:
    from asyncua import Server, ua

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:shopfloor:bench")
    obj = await server.nodes.objects.add_object(idx, "bench")
    nodes = [await obj.add_variable(ua.NodeId(f"v{i}", idx), f"v{i}", 0.0) for i in range(tags)]
    await server.start()
    ready.set()
    k = 0
    while not stop.is_set():
        k += 1
        for n in nodes:
            await server.write_attribute_value(n.nodeid, ua.DataValue(ua.Variant(float(k))))
        await asyncio.sleep(change_s)
    await server.stop()


def _serve(kind: str, args: tuple[Any, ...], ready: Any, stop: Any) -> None:
    import logging

    logging.getLogger("asyncua").setLevel(logging.ERROR)
    coro = _modbus_servers if kind == "modbus" else _opcua_server
    asyncio.run(coro(*args, ready, stop))  # type: ignore[operator]


async def _measure(drivers: list[Any], seconds: float, count: Any) -> tuple[float, float]:
    tasks = [asyncio.create_task(d.run()) for d in drivers]
    await asyncio.sleep(min(5.0, seconds / 2))  # connect and subscribe first
    n0, c0, t0 = count(), time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    n, cpu, wall = count() - n0, time.process_time() - c0, time.monotonic() - t0
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return n / wall, cpu / (n / 1000) if n else float("inf")


def _with_server(kind: str, args: tuple[Any, ...], run: Any) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_serve, args=(kind, args, ready, stop), daemon=True)
    proc.start()
    try:
        if not ready.wait(120):
            raise RuntimeError(f"{kind} servers did not start")
        return asyncio.run(run())
    finally:
        stop.set()
        proc.join(20)
        if proc.is_alive():
            proc.kill()


def bench_modbus(devices: int, tags: int, poll_s: float, seconds: float) -> tuple[float, float]:
    ports = _free_ports(devices)
    sink = CountingSink()
    drivers = [ModbusDriver(ModbusDevice.model_validate({
        "id": f"m{i}", "protocol": "modbus", "host": "127.0.0.1", "port": p, "poll_s": poll_s,
        "path": PATH, "tags": [{"name": f"t{a}", "register": {"address": a}}
                               for a in range(tags)]}), sink, heartbeat_s=3600)
        for i, p in enumerate(ports)]

    def tag_reads() -> int:
        return sum(d.polls for d in drivers) * tags

    return _with_server("modbus", (ports, tags),
                        lambda: _measure(drivers, seconds, tag_reads))


def bench_opcua(tags: int, change_s: float, seconds: float) -> tuple[float, float]:
    port = _free_ports(1)[0]
    sink = CountingSink()
    dev = OpcUaDevice.model_validate({
        "id": "o", "protocol": "opcua", "endpoint": f"opc.tcp://127.0.0.1:{port}",
        "sampling_interval_ms": change_s * 500, "queue_size": 10, "path": PATH,
        "timeout_s": 30, "tags": [{"name": f"v{i}", "node": f"ns=2;s=v{i}"}
                                  for i in range(tags)]})
    driver = OpcUaDriver(dev, sink, heartbeat_s=3600)
    return _with_server("opcua", (port, tags, change_s),
                        lambda: _measure([driver], seconds, lambda: sink.samples))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m shopfloor.edge.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10, help="measured window per protocol")
    p.add_argument("--devices", type=int, default=50, help="Modbus servers")
    p.add_argument("--tags", type=int, default=30, help="registers per Modbus server")
    p.add_argument("--poll-s", type=float, default=0.1)
    p.add_argument("--opcua-tags", type=int, default=2000)
    p.add_argument("--change-s", type=float, default=1.0, help="OPC UA server change period")
    a = p.parse_args(argv)
    import logging

    logging.getLogger("asyncua").setLevel(logging.ERROR)
    rate, cpu = bench_modbus(a.devices, a.tags, a.poll_s, a.seconds)
    print(f"modbus polling   {a.devices} devices x {a.tags} tags every {a.poll_s:g} s: "
          f"{rate:,.0f} tags/s, {cpu * 1000:.2f} ms CPU per 1,000 tags")
    rate, cpu = bench_opcua(a.opcua_tags, a.change_s, a.seconds)
    print(f"opcua subscribe  {a.opcua_tags} tags changing every {a.change_s:g} s: "
          f"{rate:,.0f} tags/s, {cpu * 1000:.2f} ms CPU per 1,000 tags")


if __name__ == "__main__":
    main()
