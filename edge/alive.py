"""The agent's own downtime: ``AliveFile(path)`` beside the outbox says until when the
last run was alive, and whether it stopped cleanly.

The agent ``touch()``es it every second and marks a clean stop with ``stopped()``; at
start, ``previous()`` tells when the previous run was last alive if it did not stop
cleanly (SIGKILL, power loss), so the agent can mark its devices OFFLINE from then. A
lost write only moves that mark up to a second earlier.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


class AliveFile:
    def __init__(self, path: Path):
        self.path = path

    def previous(self) -> int | None:
        """When a previous run that did not stop cleanly was last alive (ns), else None."""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            doc = json.loads(self.path.read_text())
            if not doc["clean"]:
                return int(doc["ts"])
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
