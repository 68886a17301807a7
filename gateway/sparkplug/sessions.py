"""What the host knows of each edge node's session: its bdSeq, the metrics its births
declared (name -> datatype, per device) and their aliases, and the last ``seq`` seen.

``Sessions(path)`` keeps them in memory and, with a path, in SQLite (one row per node,
written at each birth and death), so that data the broker redelivers after a gateway
restart is still understood. Used from one thread (paho's).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from shopfloor.sparkplug.payload import SparkplugError

NODE = ""  # the device key of the node's own metrics


@dataclass
class NodeSession:
    bd_seq: int | None
    metrics: dict[str, dict[str, int]] = field(default_factory=dict)  # device -> name -> dt
    aliases: dict[int, tuple[str, str]] = field(default_factory=dict)  # alias -> device, name
    seq: int | None = None  # last seq seen (not persisted: the first after a restart is taken)
    last_ms: int = 0  # newest payload timestamp of the session

    def add(self, device: str, metrics: list[tuple[str, int | None, int]]) -> None:
        """Declare ``device``'s metrics ``(name, alias, datatype)`` (replacing an earlier
        birth of it); SparkplugError ``sp_alias_collision`` if an alias names two metrics."""
        mine = {a for a, (d, _) in self.aliases.items() if d == device}
        taken = {a: dn for a, dn in self.aliases.items() if a not in mine}
        new: dict[int, tuple[str, str]] = {}
        for name, alias, _dt in metrics:
            if alias is None:
                continue
            other = taken.get(alias) or new.get(alias)
            if other is not None and other != (device, name):
                raise SparkplugError("sp_alias_collision",
                                     f"alias {alias} names {other[1]!r} and {name!r}")
            new[alias] = (device, name)
        for a in mine:
            del self.aliases[a]
        self.aliases.update(new)
        self.metrics[device] = {name: dt for name, _a, dt in metrics}

    def drop(self, device: str) -> None:
        self.metrics.pop(device, None)
        for a in [a for a, (d, _) in self.aliases.items() if d == device]:
            del self.aliases[a]

    def to_json(self) -> str:
        return json.dumps({"bd_seq": self.bd_seq, "metrics": self.metrics,
                           "aliases": [[a, d, n] for a, (d, n) in self.aliases.items()]})

    @classmethod
    def from_json(cls, text: str) -> NodeSession:
        doc = json.loads(text)
        return cls(doc["bd_seq"], doc["metrics"], {a: (d, n) for a, d, n in doc["aliases"]})


class Sessions:
    def __init__(self, path: Path | None = None):
        self._nodes: dict[tuple[str, str], NodeSession] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS births (grp TEXT, node TEXT, "
                             "session TEXT NOT NULL, PRIMARY KEY (grp, node))")
            for grp, node, text in self._db.execute("SELECT grp, node, session FROM births"):
                self._nodes[(grp, node)] = NodeSession.from_json(text)

    def get(self, group: str, node: str) -> NodeSession | None:
        return self._nodes.get((group, node))

    def start(self, group: str, node: str, bd_seq: int | None) -> NodeSession:
        """A new session (an NBIRTH): what the node's previous births said is forgotten."""
        session = NodeSession(bd_seq)
        self._nodes[(group, node)] = session
        return session

    def end(self, group: str, node: str) -> None:
        self._nodes.pop((group, node), None)
        if self._db is not None:
            self._db.execute("DELETE FROM births WHERE grp=? AND node=?", (group, node))

    def save(self, group: str, node: str) -> None:
        """Persist the node's births (before the message that changed them is acked)."""
        session = self._nodes.get((group, node))
        if self._db is not None and session is not None:
            self._db.execute("INSERT OR REPLACE INTO births VALUES (?,?,?)",
                             (group, node, session.to_json()))

    def __len__(self) -> int:
        return len(self._nodes)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
