"""Child processes of ``shopfloor up`` and of the tests that run services: ``Supervisor``
starts each in its own session with a log, waits until it is ready (or a one-shot job
until it succeeds), and stops them in reverse order; stop signals become one orderly stop.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopfloor.errors import ShopfloorError
from shopfloor.pids import PidDir

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
        return True
    return False


class StartupError(ShopfloorError, RuntimeError):
    """A service did not come up, or stopped; the message says which and where its log is."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def interrupt(_signum: int, _frame: Any) -> None:
    """The first stop signal raises KeyboardInterrupt; later ones only say that stopping
    is under way, so nothing interrupts the stop (a second Ctrl-C left services running)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _already_stopping)
    raise KeyboardInterrupt


def _already_stopping(signum: int, _frame: Any) -> None:
    print(f"  {signal.Signals(signum).name}: already stopping, a moment ...")


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Stop signals that arrive inside are handled (as before) when it ends."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers belong to the main thread
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _f: held.append(signum))
                for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])


@dataclass
class Supervisor:
    """Starts services as child processes, reports progress, stops them in reverse."""

    logdir: Path
    out: Callable[[str], None] = print
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    pids: PidDir | None = None  # where `shopfloor up` records what it started

    def start(self, name: str, argv: list[str], ready: Callable[[], bool],
              detail: str = "", timeout: float = 60.0) -> subprocess.Popen:
        proc, log_path = self._spawn(name, argv, detail)
        t = time.monotonic()
        while not ready():
            if proc.poll() is not None:
                raise StartupError(f"{name} exited with code {proc.returncode}; "
                                   f"its log ({log_path}) ends with:\n{_tail(log_path)}")
            if time.monotonic() - t > timeout:
                raise StartupError(f"{name} not ready after {timeout:.0f}s; see {log_path}")
            time.sleep(0.1)
        self.out(f"  ready    {name:<10} ({time.monotonic() - t:.1f}s)")
        return proc

    def jobs(self, jobs: list[tuple[str, list[str], str]]) -> None:
        """Run one-shot jobs (name, argv, detail) side by side until each has succeeded."""
        t = time.monotonic()
        started = [(name, *self._spawn(name, argv, detail)) for name, argv, detail in jobs]
        for name, proc, log_path in started:
            if proc.wait() != 0:
                raise StartupError(f"{name} failed with code {proc.returncode}; "
                                   f"its log ({log_path}) ends with:\n{_tail(log_path)}")
            self.procs.remove((name, proc))
            if self.pids is not None:
                self.pids.forget(name)
            self.out(f"  done     {name:<10} ({time.monotonic() - t:.1f}s)")

    def _spawn(self, name: str, argv: list[str], detail: str
               ) -> tuple[subprocess.Popen, Path]:
        self.logdir.mkdir(parents=True, exist_ok=True)
        log_path = self.logdir / f"{name}.log"
        self.out(f"  starting {name:<10} {detail}")
        # a Ctrl-C between the child's start and its record would orphan it: held until then
        with _signals_held():
            with open(log_path, "ab") as log:
                # own session: a terminal's Ctrl-C reaches only `shopfloor up`, which then
                # stops the services in reverse order (the gateway drains before the broker)
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            self.procs.append((name, proc))
            if self.pids is not None:
                self.pids.record(name, proc.pid)
        return proc, log_path

    def exited(self) -> list[tuple[str, int]]:
        """(name, exit code) of every service that has exited."""
        return [(name, proc.returncode) for name, proc in self.procs if proc.poll() is not None]

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM each service in reverse order (SIGKILL after ``timeout``). A signal that
        arrives meanwhile (a second Ctrl-C) is told to wait: stopping is not interrupted."""
        main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, self._still_stopping) for s in STOP_SIGNALS} \
            if main else {}
        try:
            while self.procs:
                name, proc = self.procs[-1]
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                self.procs.pop()
                if self.pids is not None:
                    self.pids.forget(name)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _still_stopping(self, signum: int, _frame: Any) -> None:
        left = ", ".join(name for name, _ in reversed(self.procs)) or "nothing"
        self.out(f"  {signal.Signals(signum).name}: already stopping ({left} left), "
                 "a moment ...")


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-2000:]


def shopfloor_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "shopfloor", *args]


def logged(path: Path, text: str) -> Callable[[], bool]:
    """True once ``text`` is in what is appended to ``path`` from now on."""
    start = path.stat().st_size if path.exists() else 0

    def seen() -> bool:
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
            f.seek(start)
            return text.encode() in f.read()
        return False
    return seen
