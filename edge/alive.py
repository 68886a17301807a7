"""The agent's own downtime: ``AliveFile(path)`` beside the outbox says until when the
last run was alive, and whether it stopped cleanly.

The agent ``touch()``es it every second and marks a clean stop with ``stopped()``; at
start, ``previous()`` tells until when the previous run was alive and whether it stopped
cleanly, so the agent can mark its devices OFFLINE from then if it did not (SIGKILL, power
loss), and stamp no first sample before it. A lost write only moves that mark up to a
second earlier.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


class AliveFile:
    def __init__(self, path: Path):
        self.path = path

    def previous(self) -> tuple[int, bool] | None:
        """When the previous run was last alive (ns) and whether it stopped cleanly; None
        for a first run."""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            doc = json.loads(self.path.read_text())
            return int(doc["ts"]), bool(doc["clean"])
        return None

    def touch(self, ts_ns: int, clean: bool = False) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"ts": ts_ns, "clean": clean}))
            os.replace(tmp, self.path)
        except OSError:  # a full disk: the mark is only older (the outbox reports the disk)
            pass

    def stopped(self, ts_ns: int) -> None:
        self.touch(ts_ns, clean=True)
