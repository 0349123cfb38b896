"""Unsigned LEB128 varints (sync, no ORM): how the history's small binary columns write their counts."""

from __future__ import annotations

from collections.abc import Iterable


def varint_put(value: int, out: bytearray) -> None:
    """Append ``value`` (at or above 0) to ``out``: seven bits a byte, the high bit set on all but the last."""
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)


def varints_put(values: Iterable[int], out: bytearray) -> None:
    """Append each of ``values`` as ``varint_put`` does (a value below 0 as 0), in one loop: no call per value."""
    for value in values:
        if value < 0:
            value = 0
        while value > 0x7F:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)


def varint_next(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """The varint at ``data[pos]`` and the position after it; ValueError naming ``what`` when the bytes end in it."""
    value = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise ValueError(f"a truncated {what} column")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos
