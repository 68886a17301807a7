"""Modbus registers -> values: ``decode`` by type and byte order, ``value_of`` a tag's
value out of a read (bit, scale and offset applied)."""

from __future__ import annotations

import struct

from .config import BIT_TABLES, Register

_FORMATS = {"uint16": "H", "int16": "h", "uint32": "I", "int32": "i", "float32": "f",
            "uint64": "Q", "int64": "q", "float64": "d"}

Value = int | float | bool | str


def _bytes(registers: list[int], word_order: str) -> bytes:
    words = list(registers)
    if word_order in ("CDAB", "DCBA"):
        words.reverse()
    raw = b"".join((w & 0xFFFF).to_bytes(2, "big") for w in words)
    if word_order in ("BADC", "DCBA"):
        raw = b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))
    return raw


def decode(registers: list[int], type_: str, word_order: str = "ABCD") -> Value:
    """Decode 16-bit registers (as read, lowest address first) into a value.

    ``word_order`` names the bytes of a 32-bit value as they sit in the registers, A most
    significant: ABCD big-endian, CDAB low word first, BADC bytes swapped within each word,
    DCBA little-endian. Longer values extend the same rule to every word. A string is
    two characters per register, first character in the high byte (ABCD) or low byte
    (BADC), cut at the first NUL.
    """
    if type_ == "bool":
        return bool(registers[0])
    if type_ == "string":
        order = "BADC" if word_order in ("BADC", "DCBA") else "ABCD"
        return _bytes(registers, order).split(b"\0", 1)[0].decode("latin-1")
    return struct.unpack(">" + _FORMATS[type_], _bytes(registers, word_order))[0]


def value_of(reg: Register, values: list[int] | list[bool], start: int) -> Value:
    """The tag's value out of a read's registers or bits, with bit, scale and offset."""
    off = reg.address - start
    if reg.table in BIT_TABLES:
        return bool(values[off])
    words = [int(v) for v in values[off:off + reg.words]]
    if reg.bit is not None:
        return bool((words[0] >> reg.bit) & 1)
    value = decode(words, reg.type, reg.word_order)
    if (reg.scale != 1.0 or reg.offset != 0.0) and isinstance(value, int | float):
        return value * reg.scale + reg.offset
    return value
