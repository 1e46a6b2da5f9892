"""The shared wire readers stay inside their buffer: a hostile offset is an error of the
caller's kind, never a read of other bytes (a negative offset once read from the buffer's end)."""

from __future__ import annotations

import struct

import pytest

from mlfit.formats._wire.flatbuffers import FlatBuffer, FlatError
from mlfit.formats._wire.protobuf import WireError, fields, read_varint


class _Mine(Exception):
    pass


def test_flatbuffer_offsets_outside_the_buffer_are_refused() -> None:
    # root table at 4 whose vtable would be at -2: struct reads that from the buffer's end
    data = struct.pack("<Ii", 4, 6)
    buf = FlatBuffer(data, _Mine)
    with pytest.raises(_Mine, match="outside"):
        buf.field(buf.deref(0), 0)
    with pytest.raises(FlatError):
        FlatBuffer(b"\x00\x00").u32(0)


def test_flatbuffer_vector_longer_than_the_file_is_refused() -> None:
    # table at 8: vtable at 0 (size 6, field 0 at +4); the field points to a vector claiming 2**20 ints
    data = struct.pack("<HHH", 6, 8, 4) + b"\x00\x00" + struct.pack("<iI", 8, 4) + struct.pack("<I", 1 << 20)
    buf = FlatBuffer(data)
    with pytest.raises(FlatError):
        buf.ints(8, 0)


def test_varint_truncated_malformed_and_bounded_by_end() -> None:
    assert read_varint(b"\x96\x01", 0) == (150, 2)
    with pytest.raises(WireError, match="truncated"):
        read_varint(b"\x96\x01", 0, end=1)
    with pytest.raises(WireError, match="malformed"):
        read_varint(b"\xff" * 11, 0)
    with pytest.raises(WireError):
        list(fields(memoryview(b"\x0a\x05ab")))
