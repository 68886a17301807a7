"""The embedded MQTT broker (amqtt) used by ``shopfloor up`` when Mosquitto is absent.

It is for a demo on one machine: no shared subscriptions, no tuning. Plants run
Mosquitto, EMQX or HiveMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys


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
