"""Static scan of a pickle or joblib file: the globals it would import, read from the
opcode stream with :mod:`pickletools`, never unpickled.

A pickle runs code through its globals (``os.system``, ``builtins.eval``, any callable
reached by REDUCE), so the list of globals is what a user must judge before trusting it.
The scan follows joblib's layout: numpy array bytes written raw after a
``NumpyArrayWrapper`` (skipped by size, from the wrapper's shape and dtype), object
arrays as nested pickles (scanned too), and whole files compressed with zlib, gzip, bz2,
xz or lzma (decompressed as a stream, so nothing is held in memory at once).

The symbolic stack below models only plain values (str, bytes, numbers, tuples, lists,
dicts) and opaque markers for everything else; no object is ever created.
"""

from __future__ import annotations

import _compat_pickle
import bz2
import contextlib
import gzip
import io
import lzma
import pickletools
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# joblib's compressor prefixes (joblib/compressor.py).
_GZIP = b"\x1f\x8b"
_BZ2 = b"BZh"
_XZ = b"\xfd7zXZ"
_LZMA = b"\x5d\x00"
_LZ4 = b"\x04\x22\x4d\x18"
_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_MAX_OPS = 50_000_000  # a bound on pathological files; real models stay far below


class PickleScanError(Exception):
    """The file is not a pickle the scanner can read to its end."""


@dataclass
class PickleScan:
    """What a pickle would do when loaded."""

    compression: str | None = None
    globals: list[str] = field(default_factory=list)  # first-seen order, unique
    dynamic_globals: int = 0  # STACK_GLOBAL whose names were not plain strings
    arrays: int = 0  # joblib arrays skipped

    def add(self, name: str) -> None:
        if name not in self.globals:
            self.globals.append(name)


class _Opaque:
    """Any value the scanner does not model (an object a real unpickler would create)."""

    def __init__(self, kind: str = "", global_name: str | None = None, args: Any = None) -> None:
        self.kind = kind
        self.global_name = global_name
        self.args = args
        self.state: Any = None


class _Mark:
    pass


_MARK = _Mark()


class _ZlibReader(io.RawIOBase):
    """A raw zlib stream (joblib's ``compress=N`` default) as a readable file."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.inflate = zlib.decompressobj()
        self.buffer = b""
        self.eof = False
        self.pos = 0

    def tell(self) -> int:  # pickletools reports positions; no seeking is needed
        return self.pos

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self.buffer and not self.eof:
            chunk = self.raw.read(1 << 16)
            if not chunk:
                self.buffer = self.inflate.flush()
                self.eof = True
            else:
                self.buffer = self.inflate.decompress(chunk)
        size = min(len(target), len(self.buffer))
        target[:size] = self.buffer[:size]
        self.buffer = self.buffer[size:]
        self.pos += size
        return size


def compression_of(head: bytes) -> str | None:
    """The joblib compression a file's first bytes show, or None for a plain file."""
    if head.startswith(_GZIP):
        return "gzip"
    if head.startswith(_BZ2):
        return "bz2"
    if head.startswith(_XZ):
        return "xz"
    if head.startswith(_LZ4):
        return "lz4"
    if head.startswith(_LZMA):
        return "lzma"
    if len(head) >= 2 and head[0] == 0x78 and ((head[0] << 8) | head[1]) % 31 == 0:
        return "zlib"
    return None


def open_stream(path: Path) -> tuple[IO[bytes], str | None]:
    """The decompressed byte stream of a (possibly joblib-compressed) pickle file."""
    raw = path.open("rb")
    head = raw.read(6)
    raw.seek(0)
    kind = compression_of(head)
    if kind is None:
        return raw, None
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw), kind  # type: ignore[return-value]
    if kind == "bz2":
        return bz2.BZ2File(raw), kind
    if kind in ("xz", "lzma"):
        return lzma.LZMAFile(raw, format=lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE), kind
    if kind == "zlib":
        return io.BufferedReader(_ZlibReader(raw)), kind
    raw.close()
    raise PickleScanError(
        f"{kind}-compressed joblib files cannot be scanned without the lz4 package; "
        "re-save with joblib.dump(model, path, compress=('gzip', 3))"
    )


def looks_like_pickle(path: Path) -> bool:
    """True when the (decompressed) content starts like a pickle (protocol 2 or later)."""
    try:
        stream, _ = open_stream(path)
        with stream:
            head = stream.read(2)
    except (OSError, EOFError, PickleScanError, zlib.error, lzma.LZMAError, ValueError):
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def scan_pickle(path: Path) -> PickleScan:
    """List the globals ``path`` would import; raises PickleScanError when it cannot be read."""
    stream, kind = open_stream(path)
    result = PickleScan(compression=kind)
    try:
        with stream:
            _scan_stream(stream, result)  # bytes after STOP are never read by an unpickler
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise PickleScanError(f"cannot decompress: {exc}") from None
    return result


def _dtype_itemsize(dtype: Any) -> int | None:
    """Item size of a pickled numpy dtype (``numpy.dtype('f8', False, True)`` + state)."""
    import numpy as np

    if not isinstance(dtype, _Opaque) or not dtype.args or not isinstance(dtype.args[0], str):
        return None
    code = dtype.args[0]
    try:
        parsed = np.dtype(code)
    except TypeError:
        return None
    if parsed.hasobject:
        return -1
    if parsed.itemsize == 0 and isinstance(dtype.state, tuple) and len(dtype.state) > 5:
        size = dtype.state[5]  # flexible types (str, bytes, void) keep their size in the state
        return size if isinstance(size, int) and size > 0 else None
    return parsed.itemsize


def _skip_array(stream: IO[bytes], state: Any, result: PickleScan) -> None:
    """Step over the raw bytes joblib wrote after a NumpyArrayWrapper."""
    if not isinstance(state, dict):
        raise PickleScanError("a joblib array wrapper without its state")
    shape = state.get("shape")
    itemsize = _dtype_itemsize(state.get("dtype"))
    if (
        not isinstance(shape, tuple)
        or not all(isinstance(d, int) and d >= 0 for d in shape)
        or itemsize is None
    ):
        raise PickleScanError("a joblib array whose shape or dtype cannot be read statically")
    result.arrays += 1
    if itemsize < 0:  # object arrays are written as a nested pickle: scan it too
        _scan_stream(stream, result)
        return
    if state.get("numpy_array_alignment_bytes") is not None:
        pad = stream.read(1)
        if len(pad) != 1:
            raise PickleScanError("truncated joblib array")
        _skip(stream, pad[0])
    count = 1
    for dim in shape:
        count *= dim
    _skip(stream, count * itemsize)


def _skip(stream: IO[bytes], size: int) -> None:
    while size > 0:
        chunk = stream.read(min(size, 1 << 20))
        if not chunk:
            raise PickleScanError("truncated: array data ends early")
        size -= len(chunk)


def _pop_mark(stack: list[Any]) -> list[Any]:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1 :]
            del stack[i:]
            return items
    raise PickleScanError("MARK expected on the stack")


def _pop(stack: list[Any]) -> Any:
    if not stack:
        raise PickleScanError("stack underflow")
    return stack.pop()


def _scan_stream(stream: IO[bytes], result: PickleScan) -> None:
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    ops = 0
    try:
        for opcode, arg, _pos in pickletools.genops(stream):
            ops += 1
            if ops > _MAX_OPS:
                raise PickleScanError("too many opcodes")
            name = opcode.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                return
            if name == "MARK":
                stack.append(_MARK)
            elif name in ("GLOBAL", "INST"):
                module, attr = _python3_name(*str(arg).partition(" ")[::2])
                result.add(f"{module}.{attr}")
                if name == "INST":
                    _pop_mark(stack)
                    stack.append(_Opaque("object", f"{module}.{attr}"))
                else:
                    stack.append(_Opaque("global", f"{module}.{attr}"))
            elif name == "STACK_GLOBAL":
                attr, module = _pop(stack), _pop(stack)
                if isinstance(module, str) and isinstance(attr, str):
                    result.add(f"{module}.{attr}")
                    stack.append(_Opaque("global", f"{module}.{attr}"))
                else:
                    result.dynamic_globals += 1
                    stack.append(_Opaque("global"))
            elif name in ("EXT1", "EXT2", "EXT4"):  # a global through copyreg's extension registry
                result.dynamic_globals += 1
                stack.append(_Opaque("global"))
            elif name in ("MEMOIZE",):
                memo[len(memo)] = stack[-1] if stack else None
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg or 0)] = stack[-1] if stack else None
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(int(arg or 0), _Opaque()))
            elif name in ("REDUCE", "NEWOBJ"):
                args = _pop(stack)
                func = _pop(stack)
                glob = func.global_name if isinstance(func, _Opaque) else None
                stack.append(_Opaque("object", glob, args))
            elif name == "NEWOBJ_EX":
                _pop(stack)
                args = _pop(stack)
                func = _pop(stack)
                stack.append(_Opaque("object", func.global_name if isinstance(func, _Opaque) else None, args))
            elif name == "OBJ":
                items = _pop_mark(stack)
                glob = items[0].global_name if items and isinstance(items[0], _Opaque) else None
                stack.append(_Opaque("object", glob))
            elif name == "BUILD":
                state = _pop(stack)
                target = stack[-1] if stack else None
                if isinstance(target, _Opaque):
                    target.state = state
                    if target.global_name == _WRAPPER:
                        _skip_array(stream, state, result)
            elif name in ("EMPTY_DICT",):
                stack.append({})
            elif name in ("EMPTY_LIST",):
                stack.append([])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = [_pop(stack) for _ in range(n)][::-1]
                stack.append(tuple(items))
            elif name == "TUPLE":
                stack.append(tuple(_pop_mark(stack)))
            elif name == "LIST":
                stack.append(list(_pop_mark(stack)))
            elif name == "DICT":
                items = _pop_mark(stack)
                stack.append(_to_dict(items))
            elif name == "APPEND":
                value = _pop(stack)
                if stack and isinstance(stack[-1], list):
                    stack[-1].append(value)
            elif name == "APPENDS":
                values = _pop_mark(stack)
                if stack and isinstance(stack[-1], list):
                    stack[-1].extend(values)
            elif name == "SETITEM":
                value, key = _pop(stack), _pop(stack)
                if stack and isinstance(stack[-1], dict):
                    _set(stack[-1], key, value)
            elif name == "SETITEMS":
                items = _pop_mark(stack)
                if stack and isinstance(stack[-1], dict):
                    stack[-1].update(_to_dict(items))
            elif name == "POP":
                _pop(stack)
            elif name == "POP_MARK":
                _pop_mark(stack)
            elif name == "DUP":
                stack.append(stack[-1] if stack else _Opaque())
            elif name in ("NONE",):
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            elif arg is not None and opcode.stack_after and not opcode.stack_before:
                # a plain constant: ints, floats, strings, bytes
                stack.append(arg)
            else:
                # Any other opcode: keep the stack's shape right with opaque values.
                if pickletools.markobject in opcode.stack_before:
                    _pop_mark(stack)
                    before = [s for s in opcode.stack_before if s is not pickletools.markobject]
                    if opcode.stack_after and opcode.stack_after[0] is pickletools.markobject:
                        before = []
                else:
                    before = list(opcode.stack_before)
                for _ in before:
                    _pop(stack)
                stack.extend(_Opaque() for _ in opcode.stack_after)
    except ValueError as exc:  # pickletools' own complaints: bad opcode, truncated argument
        raise PickleScanError(str(exc)) from None
    raise PickleScanError("the pickle has no STOP opcode (truncated)")


def _python3_name(module: str, attr: str) -> tuple[str, str]:
    """The name Python 3's unpickler resolves (protocols 0-2 write Python 2 names, e.g. __builtin__)."""
    if (module, attr) in _compat_pickle.NAME_MAPPING:
        module, attr = _compat_pickle.NAME_MAPPING[(module, attr)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return module, attr


def _to_dict(items: list[Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for i in range(0, len(items) - 1, 2):
        _set(out, items[i], items[i + 1])
    return out


def _set(target: dict[Any, Any], key: Any, value: Any) -> None:
    with contextlib.suppress(TypeError):  # an unhashable key (a list): only string keys matter here
        target[key] = value
