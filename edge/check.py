"""``shopfloor edge check --config FILE``: the commissioning check.

``run_check(config_path) -> int`` validates the config, tries every device once (connect,
read every tag) and the MQTT broker once (connect, CONNACK), prints a table
(device, protocol, reachable, tags read, first error) and returns 1 if anything is
unreachable or a tag could not be read, else 0. Secrets are never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path

from asyncua import Node, ua

from shopfloor.mqtt import MqttConfig, describe, make_client

from .config import EdgeConfig, ModbusDevice, OpcUaDevice, load_edge_config
from .modbus_driver import BIT_TABLES, plan_reads, value_of
from .modbus_driver import make_client as modbus_client
from .opcua_client import connect, operation_limits, read_values, resolve


@dataclass
class Row:
    name: str
    protocol: str
    reachable: bool
    tags_read: int
    tags: int
    error: str = ""


async def check_modbus(dev: ModbusDevice) -> Row:
    row = Row(dev.id, f"modbus/{dev.transport}", False, 0, len(dev.tags))
    client = modbus_client(dev)
    try:
        if not await asyncio.wait_for(client.connect(), dev.timeout_s * 2):
            raise ConnectionError(f"cannot connect to {dev.where}")
        row.reachable = True
        for read in plan_reads(list(dev.tags), dev.max_gap_registers, dev.max_gap_bits):
            fn = {"holding": client.read_holding_registers,
                  "input": client.read_input_registers, "coil": client.read_coils,
                  "discrete": client.read_discrete_inputs}[read.table]
            rr = await asyncio.wait_for(fn(read.start, count=read.count, device_id=dev.unit),
                                        dev.timeout_s * 1.5)
            if rr.isError():
                row.error = row.error or f"{read.table} {read.start}+{read.count}: {rr}"
                continue
            values = rr.bits if read.table in BIT_TABLES else rr.registers
            for tag in read.tags:
                value_of(tag.reg, values, read.start)
                row.tags_read += 1
    except Exception as exc:  # report, never raise: the table is the output
        row.error = row.error or _short(exc)
    finally:
        client.close()
    return row


async def check_opcua(dev: OpcUaDevice) -> Row:
    row = Row(dev.id, "opcua", False, 0, len(dev.tags))
    try:
        client = await connect(dev)
    except Exception as exc:
        row.error = _short(exc)
        return row
    row.reachable = True
    try:
        resolved = await resolve(client, dev.tags)
        nodes = [n for n in resolved if isinstance(n, Node)]
        errors = [n for n in resolved if isinstance(n, str)]
        limits = await operation_limits(client, dev.max_nodes_per_call)
        for tag_node, dv in zip(nodes, await read_values(client, nodes, limits.nodes_per_read),
                                strict=True):
            if dv.StatusCode is None or dv.StatusCode.is_good():
                row.tags_read += 1
            else:
                errors.append(f"{tag_node.nodeid.to_string()}: {dv.StatusCode.name}")
        row.error = errors[0] if errors else ""
    except Exception as exc:
        row.error = _short(exc)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 2)
    return row


def check_broker(cfg: MqttConfig, client_id: str, timeout_s: float = 5.0) -> Row:
    """Connect once and wait for the CONNACK."""
    row = Row("broker", describe(cfg), False, 0, 0)
    done = threading.Event()
    result: list[str] = []
    client = make_client(cfg, client_id)

    def on_connect(c: object, userdata: object, flags: object, reason: object,
                   props: object = None) -> None:
        result.append(str(reason))
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        client.loop_start()
        if not done.wait(timeout_s):
            row.error = f"no CONNACK within {timeout_s:g} s"
        elif result[0] != "Success":
            row.error = f"refused: {result[0]}"
        else:
            row.reachable = True
    except Exception as exc:
        row.error = _short(exc)
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
            client.loop_stop()
    return row


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ua.UaStatusCodeError | ConnectionError | OSError | TimeoutError):
        text = f"{type(exc).__name__}: {text}"
    return " ".join(text.split())[:120]


async def check_all(cfg: EdgeConfig) -> list[Row]:
    """Every device at once (each bounded by its own timeouts), then the broker."""
    coros = [check_modbus(d) if isinstance(d, ModbusDevice) else check_opcua(d)
             for d in cfg.devices]
    rows = list(await asyncio.gather(*coros))
    rows.append(await asyncio.to_thread(check_broker, cfg.mqtt, f"{cfg.agent_id}-check"))
    return rows


def format_table(rows: list[Row]) -> str:
    header = ("device", "protocol", "reachable", "tags read", "first error")
    lines = [(r.name, r.protocol, "yes" if r.reachable else "NO",
              f"{r.tags_read}/{r.tags}" if r.tags else "-", r.error or "-") for r in rows]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(4)]
    out = []
    for cells in [header, *lines]:
        out.append("  ".join(c.ljust(w) for c, w in zip(cells[:4], widths, strict=True))
                   + "  " + cells[4])
    return "\n".join(out)


def ok(rows: list[Row]) -> bool:
    return all(r.reachable and r.tags_read == r.tags and not r.error for r in rows)


def run_check(config_path: Path | str) -> int:
    """Print the table; 0 if every device and the broker answered and every tag was read."""
    cfg = load_edge_config(config_path)  # ConfigError: the CLI prints it, exit 2
    print(f"config {config_path}: valid ({len(cfg.devices)} devices)")
    rows = asyncio.run(check_all(cfg))
    print(format_table(rows))
    good = ok(rows)
    print("OK" if good else "FAILED: see the table above")
    return 0 if good else 1
