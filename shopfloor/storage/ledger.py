"""Seq ranges: which batch seqs of each edge agent are stored, as merged inclusive ranges.

``[(lo, hi), ...]`` sorted and merged (adjacent ranges join); the first range's ``hi`` is
the highest contiguous seq stored. ``gateway/completeness.py`` finds the gaps between them.
"""

from __future__ import annotations

from collections.abc import Iterable

Ranges = list[tuple[int, int]]


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
