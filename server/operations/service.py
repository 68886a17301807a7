"""The operations part of one server: its database, the stop book, the entered counts
(which every ``QuantitySource`` of the server reads), and the alert thread (evaluate
every rule, then deliver what is pending, every ``interval_s``), opened and closed by
the app's lifespan."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopfloor.server.config import ServerConfig
from shopfloor.server.operations import reasons
from shopfloor.server.operations.alerts import Evaluator
from shopfloor.server.operations.counts import CountBook
from shopfloor.server.operations.db import Database, open_database
from shopfloor.server.operations.delivery import Delivery
from shopfloor.server.operations.stops import StopBook
from shopfloor.server.registry import Registry
from shopfloor.storage import SampleReader

log = logging.getLogger("shopfloor.server.operations")


def default_dir(cfg: ServerConfig, base_dir: Path) -> Path:
    """Where the embedded operations database lives: beside the embedded store, else
    beside the config."""
    embedded = cfg.store.embedded
    return embedded.path.parent if embedded is not None else base_dir


@dataclass
class Operations:
    db: Database
    book: StopBook
    counts: CountBook
    evaluator: Evaluator
    delivery: Delivery | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, interval_s: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(interval_s,),
                                        name="alerts", daemon=True)
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.evaluator.run_once()
                if self.delivery is not None:
                    self.delivery.send_pending()
            except Exception:  # the database may be away for a while: keep trying
                log.exception("alert round failed")
            self._stop.wait(interval_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.delivery is not None:
            self.delivery.close()
        self.db.close()


def open_operations(cfg: ServerConfig, base_dir: Path, reader: SampleReader, rollups: Any,
                    registry: Registry) -> Operations:
    """Open (and migrate) the database, seed the reason tree, start the alert thread."""
    ops = cfg.operations
    db = open_database(ops.database, default_dir(cfg, base_dir))
    tree = ops.reasons if ops.reasons is None or ops.reasons.is_absolute() else (
        base_dir / ops.reasons)
    with db.session() as s:
        added = reasons.seed(s, reasons.load_reason_file(tree),
                             [e.id for e in registry.enterprises()])
    if added:
        log.info("reason tree: %d reasons added", added)
    out = Operations(db, StopBook(db, reader, cfg.oee, ops.stop_lookback_s),
                     CountBook(db, cfg.oee), Evaluator(db, reader, rollups, registry, cfg.oee))
    if ops.alerts.evaluate:
        out.delivery = Delivery(db, ops.alerts)
        out.start(ops.alerts.interval_s)
    return out
