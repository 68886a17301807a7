"""node-opcua load servers for the edge benchmark (``--opcua-server node``).

``node_servers(ports, counts, change_s)`` runs ``tests/peers/opcua_bench_server.js`` once
per port (``counts[k]`` Double variables ``s=Bench.Var<i>``, all changed every
``change_s``) and yields a ``Written`` (``.value``: values written so far, all servers)
and each server's namespace index. node-opcua is a test peer installed by ``make
test-deps`` in a source checkout, never a runtime dependency: without it this raises.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

PEERS = Path(__file__).resolve().parents[1] / "tests" / "peers"
SCRIPT = PEERS / "opcua_bench_server.js"


class Written:
    """Values written so far, the sum over the servers (each reports its total)."""

    def __init__(self, n: int) -> None:
        self.totals = [0] * n

    @property
    def value(self) -> int:
        return sum(self.totals)


def _read(proc: subprocess.Popen[str], k: int, written: Written, ready: dict[int, int],
          cond: threading.Condition) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if not line.startswith("@"):  # node-opcua's own output
            continue
        doc = json.loads(line[1:])
        if "written" in doc:
            written.totals[k] = doc["written"]
        elif "ready" in doc:
            with cond:
                ready[k] = int(doc["ns"])
                cond.notify_all()
    with cond:
        cond.notify_all()


@contextlib.contextmanager
def node_servers(ports: list[int], counts: list[int], change_s: float,
                 timeout: float = 120) -> Iterator[tuple[Written, list[int]]]:
    exe = shutil.which("node")
    if exe is None or not (PEERS / "node_modules" / "node-opcua").is_dir():
        raise RuntimeError("--opcua-server node needs node and tests/peers/node_modules "
                           "(a source checkout after `make test-deps`)")
    written, ready, cond = Written(len(ports)), {}, threading.Condition()
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for k, (port, n) in enumerate(zip(ports, counts, strict=True)):
                proc = subprocess.Popen(
                    [exe, str(SCRIPT), "--port", str(port), "--vars", str(n), "--change-ms",
                     str(round(change_s * 1000)), "--per-publish", "10000",
                     "--pki", str(Path(tmp) / f"pki{k}")],
                    cwd=tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, text=True, bufsize=1)
                procs.append(proc)
                threading.Thread(target=_read, args=(proc, k, written, ready, cond),
                                 daemon=True).start()
            deadline = time.monotonic() + timeout
            with cond:
                while len(ready) < len(procs):
                    left = deadline - time.monotonic()
                    if left <= 0 or any(p.poll() is not None for p in procs):
                        raise RuntimeError("the node-opcua bench servers did not start")
                    cond.wait(min(left, 0.5))
            yield written, [ready[k] for k in range(len(procs))]
        finally:
            for proc in procs:
                if proc.stdin is not None:
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
