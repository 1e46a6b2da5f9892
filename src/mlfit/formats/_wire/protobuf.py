"""The protobuf wire format, read by hand and within bounds: varints, and the fields of one
message. Every protobuf reader in mlfit (the ONNX sniff and safety walk, SavedModel signatures)
reads varints here; a malformed or truncated buffer raises :class:`WireError`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Protocol


class WireError(ValueError):
    """The bytes are not the protobuf they claim to be (truncated, malformed)."""


class ByteSource(Protocol):
    """Indexable bytes: ``bytes``, an mmap, or a window over a file (:class:`FileBytes`)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> int: ...


class FileBytes:
    """A file read as bytes on demand, 64 KiB at a time: protobuf field headers are walked
    and payloads skipped without reading (or mapping) the whole file."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self.fh, self.size = fh, size
        self.start, self.buffer = 0, b""

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int, /) -> int:
        offset = index - self.start
        if not 0 <= offset < len(self.buffer):
            if not 0 <= index < self.size:
                raise IndexError(index)
            self.fh.seek(index)
            self.start, self.buffer = index, self.fh.read(1 << 16)
            if not self.buffer:
                raise IndexError(index)
            offset = 0
        return self.buffer[offset]


def read_varint(data: ByteSource, pos: int, end: int | None = None) -> tuple[int, int]:
    """A varint at ``pos`` that must end before ``end`` (default: the buffer's end):
    (value, next position); WireError when truncated or longer than 64 bits."""
    limit = len(data) if end is None else end
    result = shift = 0
    while True:
        if pos >= limit:
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("malformed varint")


def fields(data: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, int or bytes) of one message; fixed-width fields are skipped. WireError when malformed."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = read_varint(data, pos)
            if pos + length > end:
                raise WireError("truncated field")
            yield number, data[pos:pos + length]
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise WireError(f"wire type {wire}")


def messages(data: memoryview, number: int) -> list[memoryview]:
    """Every length-delimited field ``number`` of one message (sub-messages, strings)."""
    return [v for n, v in fields(data) if n == number and isinstance(v, memoryview)]


def int64(value: int) -> int:
    """A varint read as protobuf's int64 (two's complement over 64 bits)."""
    return value - (1 << 64) if value >= 1 << 63 else value
