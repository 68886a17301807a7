"""Pid files of ``shopfloor up``: what a run started in its work directory, so the next
run finds what a killed one left behind.

``workdir/pids/NAME.pid`` holds ``pid start_ticks`` for the supervisor (``up``) and each
service it started; ``start_ticks`` (field 22 of ``/proc/PID/stat``) tells a live process
from a later one that reuses its pid. A file is removed when its process is stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shopfloor.config import ConfigError

SUPERVISOR = "up"


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None if it does not exist.
    Without /proc (not Linux), 0 for any live pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    if fields[0] == "Z":  # a zombie: exited, not yet reaped
        return None
    return int(fields[19])


@dataclass(frozen=True)
class Tracked:
    name: str
    pid: int

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"


class PidDir:
    """The ``pids/`` folder of one work directory."""

    def __init__(self, workdir: Path):
        self.path = workdir / "pids"

    def record(self, name: str, pid: int) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        ticks = start_ticks(pid)
        tmp = self.path / f".{name}.pid"
        tmp.write_text(f"{pid} {ticks if ticks is not None else 0}\n")
        tmp.replace(self.path / f"{name}.pid")

    def forget(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / f"{name}.pid").unlink()

    def alive(self) -> list[Tracked]:
        """Processes recorded here that still run (stale files are removed)."""
        out = []
        for f in sorted(self.path.glob("*.pid")):
            try:
                pid, ticks = (int(x) for x in f.read_text().split())
            except (OSError, ValueError):
                f.unlink(missing_ok=True)
                continue
            now = start_ticks(pid)
            if now is not None and (ticks == 0 or now == ticks) and pid != os.getpid():
                out.append(Tracked(f.stem, pid))
            else:
                f.unlink(missing_ok=True)
        return out

    def clear_leftovers(self, order: Sequence[str],
                        out: Callable[[str], None] = print) -> None:
        """Stop what a previous run left running here (services in ``order``, others
        first); refuse (``ConfigError``, naming the pid) while that run's ``shopfloor up``
        itself still runs."""
        alive = self.alive()
        supervisor = next((p for p in alive if p.name == SUPERVISOR), None)
        if supervisor is not None:
            raise ConfigError(f"another `shopfloor up` runs in {self.path.parent}: "
                              f"{supervisor}; stop it (Ctrl-C, or kill {supervisor.pid}) "
                              "or choose another --workdir")
        if alive:
            rank = {name: i for i, name in enumerate(order)}
            alive.sort(key=lambda p: rank.get(p.name, -1))
            out("stopping what a previous run left running: " + ", ".join(map(str, alive)))
            self.stop(alive)

    def stop(self, procs: list[Tracked], timeout: float = 15.0) -> None:
        """SIGTERM each (in the order given), SIGKILL what is left after ``timeout``."""
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while start_ticks(p.pid) is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            if start_ticks(p.pid) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                while start_ticks(p.pid) is not None and time.monotonic() < deadline + 5:
                    time.sleep(0.05)
            self.forget(p.name)
