"""What drivers share: the sink they report to and a reconnect backoff."""

from __future__ import annotations

import random
import time
from typing import Protocol

from shopfloor.contract import Sample


class Sink(Protocol):
    """Where a driver reports, always from the agent's event loop."""

    def sample(self, device: str, sample: Sample) -> None: ...

    def connected(self, device: str, up: bool, detail: str) -> None: ...


class Backoff:
    """Capped exponential backoff with full jitter in [delay/2, delay]."""

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0):
        self.base_s, self.cap_s = base_s, cap_s
        self._attempt = 0

    def next_delay(self) -> float:
        delay = min(self.cap_s, self.base_s * (2 ** min(self._attempt, 30)))
        self._attempt += 1
        return delay * (0.5 + random.random() / 2)

    def reset(self) -> None:
        self._attempt = 0


def now_ns() -> int:
    return time.time_ns()
