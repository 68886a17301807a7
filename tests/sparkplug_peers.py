"""Independent Sparkplug B peers on Eclipse Tahu's JavaScript libraries (tests/peers/):
``JsHost`` (a host application, optionally the primary host) and ``JsEdgeNode`` (an edge
node playing a script), each a node process printing one JSON line per event, which the
tests read through ``Peer.wait_for``."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PEERS = Path(__file__).resolve().parent / "peers"
Event = dict[str, Any]


class Peer:
    def __init__(self, script: str, *args: str):
        node = shutil.which("node")
        if node is None or not (PEERS / "node_modules" / "sparkplug-payload").exists():
            raise RuntimeError("node or tests/peers/node_modules missing: run `make test-deps`")
        self.proc = subprocess.Popen([node, str(PEERS / script), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=PEERS)
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.events.append(json.loads(line))
                self._cond.notify_all()

    def wait_for(self, pred: Callable[[list[Event]], Any], timeout: float, what: str) -> Any:
        """The first true ``pred(events)`` within ``timeout`` s, else AssertionError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (got := pred(self.events)):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"timed out waiting for {what}; "
                                         f"last events: {self.events[-3:]}")
                self._cond.wait(min(left, 0.5))
            return got

    def of(self, type_: str) -> list[Event]:
        with self._cond:
            return [e for e in self.events if e["type"] == type_]

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


class JsHost(Peer):
    def __init__(self, mqtt_port: int, host_id: str | None = None):
        super().__init__("sparkplug_host.js", f"mqtt://127.0.0.1:{mqtt_port}",
                         *([host_id] if host_id else []))
        self.wait_for(lambda ev: any(e["type"] == "ready" for e in ev), 15, "the JS host")


class JsEdgeNode(Peer):
    def __init__(self, mqtt_port: int, group: str, node: str, script: Path):
        super().__init__("sparkplug_edge_node.js", f"mqtt://127.0.0.1:{mqtt_port}", group,
                         node, str(script))
