"""Read planning: ``plan_reads`` merges a device's tags into as few requests as the
protocol's size limits and the configured gaps allow."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import BIT_TABLES, ModbusTag

MAX_REGISTERS = 125  # per read request (Modbus limit for registers)
MAX_BITS = 2000  # per read request (coils / discrete inputs)


@dataclass
class Read:
    """One request: ``count`` registers (or bits) of ``table`` from ``start``."""

    table: str
    start: int
    count: int
    tags: list[ModbusTag] = field(default_factory=list)


def plan_reads(tags: list[ModbusTag], max_gap_registers: int = 0,
               max_gap_bits: int = 0) -> list[Read]:
    """Group tags into as few requests as possible: sorted by address per table, ranges
    merge when they overlap, touch, or are at most ``max_gap_*`` unused addresses apart,
    and the merged request stays within the protocol's size limit."""
    reads: list[Read] = []
    by_table: dict[str, list[ModbusTag]] = {}
    for tag in tags:
        by_table.setdefault(tag.reg.table, []).append(tag)
    for table, group in by_table.items():
        bits = table in BIT_TABLES
        limit, gap = (MAX_BITS, max_gap_bits) if bits else (MAX_REGISTERS, max_gap_registers)
        group.sort(key=lambda t: (t.reg.address, t.reg.words))
        cur: Read | None = None
        for tag in group:
            reg = tag.reg
            end = reg.address + reg.words
            if cur is not None and reg.address <= cur.start + cur.count + gap \
                    and max(end, cur.start + cur.count) - cur.start <= limit:
                cur.count = max(cur.count, end - cur.start)
                cur.tags.append(tag)
            else:
                cur = Read(table, reg.address, reg.words, [tag])
                reads.append(cur)
    return reads
