"""The gateway's writer side: received messages -> batches -> every store -> the seq ledger.

``collect`` takes messages off the queue up to ``batch.max_samples`` samples or until the
oldest is ``batch.max_interval_s`` old. ``BatchWriter.write`` writes a batch to every
``SampleWriter`` in turn, then hands its samples and seqs to the ``SeqLedger`` (the last
write, so a recorded seq is in every store). A failed write is retried with capped
backoff, never dropped; a batch a store refuses as bad data (``PermanentWriteError``) is
split to find the message(s), which go to ``on_refused`` (dead-lettered) and are not stored.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shopfloor.contract import DeviceSample
from shopfloor.storage import PermanentWriteError, Stores
from shopfloor.storage.ledger import Ranges

from .config import BatchConfig

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Received:
    """One received message, in arrival order."""

    gen: int  # connection generation it arrived on (a mid is only valid on it)
    mid: int
    qos: int
    topic: str
    rows: list[DeviceSample]  # empty for a rejected message (acked in order, nothing to write)
    head: bytes  # the payload's first KiB, for the dead-letter topic
    received: float = field(default_factory=time.monotonic)
    seq: tuple[str, int] | None = None  # (agent, seq) of a decoded batch


def collect(q: queue.Queue[Received], cfg: BatchConfig,
            stopping: threading.Event) -> list[Received]:
    """The next batch: empty if nothing arrived within 0.2 s. While ``stopping``, whatever is
    queued, without waiting for more."""
    try:
        first = q.get(timeout=0.2)
    except queue.Empty:
        return []
    batch, n = [first], len(first.rows)
    deadline = first.received + cfg.max_interval_s
    while n < cfg.max_samples:
        remaining = deadline - time.monotonic()
        try:
            item = q.get(timeout=remaining) if remaining > 0 and not stopping.is_set() \
                else q.get_nowait()
        except queue.Empty:
            break
        batch.append(item)
        n += len(item.rows)
    return batch


Write = Callable[[list[DeviceSample], dict[str, list[int]]], None]


def _name(store: object) -> str:
    """For logs: the store's kind and, for a file, its path (a full volume says which)."""
    path = getattr(store, "path", None)
    return f"{type(store).__name__} {path}" if path else type(store).__name__


class BatchWriter:
    """Writes batches to ``stores``; ``give_up`` set stops retrying (the batch stays unacked)."""

    def __init__(self, stores: Stores, retry_max_s: float, give_up: threading.Event, *,
                 on_retry: Callable[[], None], on_refused: Callable[[Received, str], None],
                 on_recorded: Callable[[dict[str, Ranges]], None]):
        self.stores = stores
        self._retry_max_s = retry_max_s
        self._give_up = give_up
        self._on_retry = on_retry  # a failed attempt (counted)
        self._on_refused = on_refused  # a message a store refuses as bad data
        self._on_recorded = on_recorded  # the agents' ranges after the ledger's write

    def write(self, batch: list[Received]) -> bool:
        """Write the batch to every store, then the ledger; False if we gave up."""
        if not any(item.rows or item.seq for item in batch):
            return True
        for writer in self.stores.writers:
            if not self._write_to(_name(writer), batch,
                                  lambda rows, _seqs, w=writer: w.write(rows)):
                return False
        return self._write_to(_name(self.stores.ledger), batch, self._record,
                              with_seqs=True)

    def _record(self, rows: list[DeviceSample], seqs: dict[str, list[int]]) -> None:
        self._on_recorded(self.stores.ledger.write(rows, seqs))

    def _write_to(self, name: str, batch: list[Received], write: Write, *,
                  with_seqs: bool = False) -> bool:
        rows = [r for item in batch for r in item.rows]
        seqs: dict[str, list[int]] = {}
        for item in batch:
            if with_seqs and item.seq is not None:
                seqs.setdefault(item.seq[0], []).append(item.seq[1])
        if not rows and not seqs:
            return True
        delay = 0.1
        while True:
            try:
                write(rows, seqs)
                return True
            except PermanentWriteError as exc:
                if len(batch) > 1:  # find the message(s) the store refuses
                    return all(self._write_to(name, [item], write, with_seqs=with_seqs)
                               for item in batch)
                log.error("%s refused a message's samples: %s", name, exc)
                self._on_refused(batch[0], str(exc)[:500])
                batch[0].rows = []  # acked as a reject, not counted as stored
                return True
            except Exception as exc:
                self._on_retry()
                log.warning("writing %d samples to %s failed (%s: %s); retrying in %.1fs",
                            len(rows), name, type(exc).__name__, str(exc)[:300], delay)
                if self._give_up.wait(delay):
                    return False
                delay = min(delay * 2, self._retry_max_s)
