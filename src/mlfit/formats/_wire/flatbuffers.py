"""The flatbuffers wire format, read by hand with every offset checked against the buffer:
the one reader behind the TFLite safety scan and the TFLite declared-input reader. An offset
outside the buffer raises the caller's error type (``error``), never an IndexError or a read
of unrelated bytes."""

from __future__ import annotations

import struct
from typing import Any


class FlatError(ValueError):
    """A flatbuffer offset or length points outside the buffer."""


class FlatBuffer:
    """Tables, vectors and scalars of one flatbuffer (little-endian, as the format defines)."""

    def __init__(self, data: Any, error: type[Exception] = FlatError) -> None:
        self.data = data
        self.size = len(data)
        self.error = error

    def need(self, pos: int, length: int) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise self.error("an offset points outside the file")

    def _unpack(self, fmt: str, pos: int) -> Any:
        self.need(pos, struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.data, pos)[0]

    def u8(self, pos: int) -> int:
        self.need(pos, 1)
        return int(self.data[pos])

    def u16(self, pos: int) -> int:
        return int(self._unpack("<H", pos))

    def u32(self, pos: int) -> int:
        return int(self._unpack("<I", pos))

    def i32(self, pos: int) -> int:
        return int(self._unpack("<i", pos))

    def u64(self, pos: int) -> int:
        return int(self._unpack("<Q", pos))

    def field(self, table: int, index: int) -> int | None:
        """Position of field ``index`` of the table at ``table``, or None when absent."""
        vtable = table - self.i32(table)
        vsize = self.u16(vtable)
        slot = 4 + 2 * index
        if slot + 2 > vsize:
            return None
        offset = self.u16(vtable + slot)
        return table + offset if offset else None

    def deref(self, pos: int) -> int:
        return pos + self.u32(pos)

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """(start of elements, length) of a vector field; (0, 0) when absent."""
        pos = self.field(table, index)
        if pos is None:
            return 0, 0
        vec = self.deref(pos)
        return vec + 4, self.u32(vec)

    def bytes_field(self, table: int, index: int) -> bytes | None:
        start, length = self.vector(table, index)
        if not start:
            return None
        self.need(start, length)
        return bytes(self.data[start:start + length])

    def string(self, table: int, index: int) -> str:
        raw = self.bytes_field(table, index)
        return "" if raw is None else raw.decode("utf-8", "replace")

    def byte(self, table: int, index: int) -> int:
        pos = self.field(table, index)
        return 0 if pos is None else self.u8(pos)

    def tables(self, table: int, index: int, limit: int = 10_000_000) -> list[int]:
        start, length = self.vector(table, index)
        if length > limit:
            raise self.error(f"more than {limit} entries in one list")
        self.need(start, 4 * length)
        return [self.deref(start + 4 * i) for i in range(length)]

    def ints(self, table: int, index: int, fmt: str = "<i") -> list[Any]:
        start, length = self.vector(table, index)
        width = struct.calcsize(fmt)
        self.need(start, width * length)
        return [struct.unpack_from(fmt, self.data, start + width * i)[0] for i in range(length)]
