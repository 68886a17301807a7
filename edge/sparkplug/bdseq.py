"""bdSeq, the birth/death sequence of an edge node's MQTT sessions (0..255, +1 per
CONNECT), kept in a small JSON file written atomically (temp file, fsync, rename, fsync
of the folder) before each CONNECT, so the NDEATH the broker sends for a killed agent and
the NBIRTH after its restart carry the numbers a host expects."""

from __future__ import annotations

import json
import os
from pathlib import Path


class BdSeq:
    def __init__(self, path: Path):
        self.path = path
        self.value: int | None = None  # the bdSeq of the latest CONNECT
        try:
            value = json.loads(path.read_text())["bd_seq"]
            if isinstance(value, int) and 0 <= value <= 255:
                self.value = value
        except (OSError, ValueError, KeyError, TypeError):
            pass

    def next(self) -> int:
        """The bdSeq of the next CONNECT, on disk before it is returned."""
        value = 0 if self.value is None else (self.value + 1) % 256
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"bd_seq": value}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.value = value
        return value
