"""``shopfloor edge check --config FILE``: the commissioning check.

``run_check(config_path) -> int`` validates the config, tries every device once (connect,
read every tag; devices sharing a serial line or RTU-over-TCP gateway over one
connection, one request at a time) and the MQTT broker once (connect, CONNACK), prints
a table (device, protocol, reachable, tags read, first error) and returns 1 if anything
is unreachable or a tag could not be read, else 0. Secrets are never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

from shopfloor.contract import Sample
from shopfloor.mqtt import MqttConfig, describe, mqtt_client

from .config import EdgeConfig, load_edge_config
from .driver import CheckResult, quiet_libraries, short_error
from .protocols import drivers_for


class _Silent:
    """The sink of a driver that is only checked (``check`` reports nothing to it)."""

    def sample(self, device: str, sample: Sample) -> None:
        pass

    def connected(self, device: str, up: bool, detail: str, since_ns: int) -> None:
        pass


def check_broker(cfg: MqttConfig, client_id: str, timeout_s: float = 5.0) -> CheckResult:
    """Connect once and wait for the CONNACK."""
    row = CheckResult("broker", describe(cfg), False, 0, 0)
    done = threading.Event()
    result: list[str] = []
    client = mqtt_client(cfg, client_id)

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
        row.error = short_error(exc)
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
            client.loop_stop()
    return row


async def check_all(cfg: EdgeConfig) -> list[CheckResult]:
    """Every device at once (each bounded by its own timeouts; the devices of a shared
    Modbus line one request at a time over one connection), then the broker; rows in
    config order."""
    drivers = drivers_for(cfg.devices, _Silent(), cfg.publish.heartbeat_s)
    rows = list(await asyncio.gather(*(d.check() for d in drivers.values())))
    rows.append(await asyncio.to_thread(check_broker, cfg.mqtt, f"{cfg.agent_id}-check"))
    return rows


def format_table(rows: list[CheckResult]) -> str:
    header = ("device", "protocol", "reachable", "tags read", "first error (or note)")
    lines = [(r.name, r.protocol, "yes" if r.reachable else "NO",
              f"{r.tags_read}/{r.tags}" if r.tags else "-", r.error or r.note or "-")
             for r in rows]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(4)]
    out = []
    for cells in [header, *lines]:
        out.append("  ".join(c.ljust(w) for c, w in zip(cells[:4], widths, strict=True))
                   + "  " + cells[4])
    return "\n".join(out)


def ok(rows: list[CheckResult]) -> bool:
    return all(r.reachable and r.tags_read == r.tags and not r.error for r in rows)


def run_check(config_path: Path | str) -> int:
    """Print the table; 0 if every device and the broker answered and every tag was read."""
    quiet_libraries()
    cfg = load_edge_config(config_path)  # ConfigError: the CLI prints it, exit 2
    print(f"config {config_path}: valid ({len(cfg.devices)} devices)")
    rows = asyncio.run(check_all(cfg))
    print(format_table(rows))
    good = ok(rows)
    print("OK" if good else "FAILED: see the table above")
    return 0 if good else 1
