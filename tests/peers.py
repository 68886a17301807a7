"""Independent peers for the edge tests: servers not built on the edge's own libraries.

``NodeOpcUa`` runs ``tests/peers/opcua_server.js`` (node-opcua) on a free loopback port and
drives it over stdin (set a value, count a counter up fast, remove or add a node);
``ModbusPeer`` runs ``tests/peers/modbus_server.js`` (npm ``modbus-serial`` or
``jsmodbus``). Both are installed by ``scripts/install-test-deps.sh`` (``npm ci`` in
``tests/peers``); they are test fixtures, never runtime dependencies.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from services import LOOPBACK, free_port, stop

PEERS = Path(__file__).parent / "peers"


def node() -> str:
    path = shutil.which("node")
    if path is None or not (PEERS / "node_modules").is_dir():
        raise RuntimeError("node and tests/peers/node_modules are needed: run "
                           "`make test-deps` (scripts/install-test-deps.sh)")
    return path


class _Peer:
    """A node script that prints JSON lines (after "@") and reads JSON commands on stdin."""

    def __init__(self, script: str, argv: list[str], cwd: Path, ready_timeout: float = 60):
        self.cwd = cwd
        cwd.mkdir(parents=True, exist_ok=True)
        self._log = open(cwd / f"{Path(script).stem}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([node(), str(PEERS / script), *argv], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, bufsize=1)
        self._ids = itertools.count(1)
        self._answers: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self.ready: dict[str, Any] = {}
        threading.Thread(target=self._read, daemon=True).start()
        with self._cond:
            if not self._cond.wait_for(lambda: self.ready or self.proc.poll() is not None,
                                       ready_timeout):
                raise TimeoutError(f"{script} did not start (see {self._log.name})")
        if not self.ready:
            raise RuntimeError(f"{script} exited {self.proc.poll()} (see {self._log.name})")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.startswith("@"):  # the library's own output
                continue
            doc = json.loads(line[1:])
            with self._cond:
                if "ready" in doc:
                    self.ready = doc
                else:
                    self._answers[doc.get("ok", doc.get("id"))] = doc
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def command(self, timeout: float = 30, **cmd: Any) -> dict[str, Any]:
        """Send one command and wait for its answer; raises if the peer reports an error."""
        cid = next(self._ids)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": cid, **cmd}) + "\n")
        self.proc.stdin.flush()
        with self._cond:
            if not self._cond.wait_for(lambda: cid in self._answers, timeout):
                raise TimeoutError(f"no answer to {cmd}")
            answer = self._answers.pop(cid)
        if "error" in answer:
            raise RuntimeError(f"{cmd}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        stop(self.proc)
        self._log.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()

    def __enter__(self) -> _Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NodeOpcUa(_Peer):
    """node-opcua server: variables ``ns=<ns>;s=Machine.<name>`` in ``urn:peer:machine``."""

    URI = "urn:peer:machine"

    def __init__(self, workdir: Path, variables: list[dict[str, Any]], *,
                 port: int | None = None, secure_only: bool = False,
                 extra_namespace: bool = False):
        self.port = port or free_port()
        argv = ["--port", str(self.port), "--pki", str(workdir / "pki"),
                "--vars", json.dumps(variables)]
        argv += ["--secure-only"] if secure_only else []
        argv += ["--extra-namespace"] if extra_namespace else []
        super().__init__("opcua_server.js", argv, workdir)
        self.ns = int(self.ready["ns"])

    @property
    def url(self) -> str:
        return f"opc.tcp://{LOOPBACK}:{self.port}"

    def node(self, name: str) -> str:
        return f"nsu={self.URI};s=Machine.{name}"

    @property
    def pki(self) -> Path:
        return self.cwd / "pki"


class ModbusPeer(_Peer):
    """A Modbus TCP server, unit 1: ``impl`` "modbus-serial" or "jsmodbus". ``units``
    (modbus-serial only): several units behind the one port (a Modbus TCP gateway), each
    with its own registers (``preset``: holding registers from 0 per unit, set before it
    listens); ``silent`` units get no answer."""

    def __init__(self, workdir: Path, impl: str = "modbus-serial", registers: int = 200,
                 port: int | None = None, units: list[int] | None = None,
                 preset: dict[int, list[int]] | None = None):
        self.port = port or free_port()
        argv = ["--port", str(self.port), "--impl", impl, "--registers", str(registers)]
        if units:
            assert impl == "modbus-serial", "jsmodbus answers every unit from one table"
            argv += ["--units", ",".join(map(str, units))]
        if preset:
            argv += ["--preset", json.dumps({str(u): w for u, w in preset.items()})]
        super().__init__("modbus_server.js", argv, workdir)

    def write(self, address: int, words: list[int], table: str = "holding",
              unit: int | None = None) -> None:
        self.command(write=address, words=words, table=table,
                     **({} if unit is None else {"unit": unit}))

    def silent(self, units: list[int]) -> None:
        self.command(silent=units)

    def connections(self) -> int:
        """TCP connections accepted so far."""
        return int(self.command(connections=True)["value"])
