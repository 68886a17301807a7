"""The brokers of ``shopfloor up``: Mosquitto's config (``mosquitto_conf``), and the
embedded MQTT broker (amqtt) used when Mosquitto is absent.

The embedded one is for a demo on one machine: no shared subscriptions, no tuning.
Plants run Mosquitto, EMQX or HiveMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path


def mosquitto_conf(host: str, port: int, persistence_dir: Path, extra: str = "") -> str:
    """A Mosquitto config for one local listener, persistent in ``persistence_dir``.

    Started as root, Mosquitto drops to its own user, which cannot write a directory of
    root's (it logged "Error saving in-memory database ... Permission denied" at every
    save, so persistence silently did not work): as root it keeps root (``user root``).
    """
    return (f"listener {port} {host}\nallow_anonymous true\n"
            "set_tcp_nodelay true\nmax_inflight_messages 1000\n"
            "max_queued_messages 1000000\npersistence true\n"
            f"persistence_location {persistence_dir}/\n"
            + ("user root\n" if os.geteuid() == 0 else "") + extra)


async def serve(host: str, port: int) -> None:
    from amqtt.broker import Broker

    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "sys_interval": 0,
        "auth": {"allow-anonymous": True},
        "topic-check": {"enabled": False},
    })
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(host, port))


if __name__ == "__main__":
    main()
