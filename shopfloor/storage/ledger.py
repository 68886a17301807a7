"""The seq ledger: which batch seqs of each edge agent are in every store.

Seqs are kept as merged inclusive ranges ``[(lo, hi), ...]``, sorted (adjacent ranges
join); the first range's ``hi`` is the highest contiguous seq stored.
``gateway/completeness.py`` finds the gaps between them.

``SeqLedger`` is what the gateway records a batch's seqs in, as the batch's last write
(after every ``SampleWriter``), so a recorded seq means "in every store". Two ledgers:
the embedded store (``SqliteStore``: table ``agent_seqs``, merged in the same transaction
as the batch's own samples, shared by every gateway on that file) and ``MemoryLedger``
(no embedded store: kept for this process only). ``open_stores`` picks one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from shopfloor.contract import DeviceSample

Ranges = list[tuple[int, int]]


class SeqLedger(Protocol):
    def write(self, rows: list[DeviceSample], seqs: dict[str, list[int]] | None = None,
              closed: dict[str, Ranges] | None = None) -> dict[str, Ranges]:
        """The batch's last write: ``rows`` into the ledger's own store, if it is one, and in
        the same transaction ``seqs`` (agent -> batch seqs stored) and ``closed`` (agent ->
        ranges given up) recorded as done. Returns those agents' ranges after the merge."""
        ...

    def seq_ranges(self) -> dict[str, Ranges]:
        """Agent -> recorded ranges (with those of other gateways sharing the ledger)."""
        ...

    def close(self) -> None: ...


class MemoryLedger:
    """The ledger without an embedded store: ranges in this process's memory, lost on a
    restart (so a gap from before it is not asked for). It holds no samples: ``rows``
    were written to every store before it is called."""

    def __init__(self) -> None:
        self._ranges: dict[str, Ranges] = {}

    def write(self, rows: list[DeviceSample], seqs: dict[str, list[int]] | None = None,
              closed: dict[str, Ranges] | None = None) -> dict[str, Ranges]:
        out = {}
        for agent, add in done(seqs, closed).items():
            self._ranges[agent] = merge([*self._ranges.get(agent, []), *add])
            out[agent] = list(self._ranges[agent])
        return out

    def seq_ranges(self) -> dict[str, Ranges]:
        return {a: list(r) for a, r in sorted(self._ranges.items())}

    def close(self) -> None:
        pass


def done(seqs: dict[str, list[int]] | None, closed: dict[str, Ranges] | None,
         ) -> dict[str, Ranges]:
    """Agent -> what ``SeqLedger.write(rows, seqs, closed)`` merges in: the seqs as
    one-seq ranges, and the closed ranges."""
    out: dict[str, Ranges] = {}
    for agent, agent_seqs in (seqs or {}).items():
        out.setdefault(agent, []).extend((s, s) for s in agent_seqs)
    for agent, ranges in (closed or {}).items():
        out.setdefault(agent, []).extend(ranges)
    return out


def add_seqs(ranges: Ranges, seqs: Iterable[int]) -> Ranges:
    """``ranges`` with ``seqs`` added, merged (adjacent ranges join)."""
    return merge([*ranges, *((s, s) for s in seqs)])


def merge(ranges: Iterable[tuple[int, int]]) -> Ranges:
    pts = sorted(ranges)
    out: Ranges = []
    for lo, hi in pts:
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out
