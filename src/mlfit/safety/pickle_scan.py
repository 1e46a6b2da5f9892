"""Static scan of a pickle or joblib file: the globals it would import, read from the
opcode stream with :mod:`pickletools`, never unpickled.

A pickle runs code through its globals (``os.system``, ``builtins.eval``, any callable
reached by REDUCE), so the list of globals is what a user must judge before trusting it.
The scan reads exactly the bytes ``joblib.load`` reads (joblib 1.x ``NumpyUnpickler`` on
Python's ``pickle._Unpickler``):

- pickle frames (``FRAME``) are buffered the way ``pickle._Unframer`` buffers them, so a raw
  array read inside a frame takes its bytes from after the frame, as the real loader does;
- after a ``BUILD`` on a ``NumpyArrayWrapper`` the array bytes are stepped over by the size
  joblib computes: the product of ``shape`` (int64, as joblib does) times the element size
  of the dtype *as numpy rebuilds it from its pickled arguments and state* (numpy is used
  for that, on plain values only), after the alignment padding byte and padding;
- object arrays are a nested pickle read by a plain unpickler (no wrapper handling inside);
- whole files compressed with zlib, gzip, bz2, xz or lzma are decompressed as a stream.

Anything joblib never writes is itself a refusal (:class:`PickleScanError`): a wrapper not
built by ``NEWOBJ`` with no arguments, or built twice, a dtype whose code declares an
element size its pickled state contradicts, a shape that overflows, old-style wrappers that
point at other files, a truncated array. The error carries every global read before it.

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
# Old joblib (< 0.10) wrappers read their array from another file next to the pickle.
_FOREIGN_WRAPPERS = ("joblib.numpy_pickle_compat.NDArrayWrapper", "joblib.numpy_pickle_compat.ZNDArrayWrapper",
                     "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
                     "sklearn.externals.joblib.numpy_pickle_compat.NDArrayWrapper",
                     "sklearn.externals.joblib.numpy_pickle_compat.ZNDArrayWrapper")
_MAX_OPS = 50_000_000  # a bound on pathological files; real models stay far below


class PickleScanError(Exception):
    """The file is not a pickle the scanner can read to its end (or is inconsistent)."""

    def __init__(self, message: str, globals_seen: list[str] | None = None) -> None:
        super().__init__(message)
        self.globals_seen: list[str] = list(globals_seen or [])


@dataclass
class PickleScan:
    """What a pickle would do when loaded."""

    compression: str | None = None
    globals: list[str] = field(default_factory=list)  # first-seen order, unique
    dynamic_globals: int = 0  # STACK_GLOBAL whose names were not plain strings
    arrays: int = 0  # joblib arrays skipped
    # What joblib never writes but the loader would still read (it uses the size numpy derives):
    # reason enough to refuse, and the scan goes on so every global is listed.
    inconsistencies: list[str] = field(default_factory=list)

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
            _scan_stream(stream, result, joblib_arrays=True)  # bytes after STOP are never read
    except PickleScanError as exc:
        exc.globals_seen = list(result.globals)
        raise
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise PickleScanError(f"cannot decompress: {exc}", result.globals) from None
    return result


class _Framed:
    """The byte source an unpickler reads opcodes from: ``pickle._Unframer``'s semantics.

    Opcodes and their arguments come from the current frame while it has bytes; raw reads
    (joblib's array payloads) always go to the file itself, after the frame.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.frame: io.BytesIO | None = None
        self.pos = 0

    def tell(self) -> int:
        return self.pos

    def raw_read(self, size: int) -> bytes:
        """``size`` bytes from the file (short only at its end), read in bounded chunks."""
        chunks: list[bytes] = []
        left = size
        while left > 0:
            chunk = self.raw.read(min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def read(self, size: int) -> bytes:
        self.pos += size
        if self.frame is not None:
            data = self.frame.read(size)
            if not data and size != 0:
                self.frame = None
                return self.raw_read(size)
            if len(data) < size:
                raise PickleScanError("pickle exhausted before end of frame")
            return data
        return self.raw_read(size)

    def readline(self) -> bytes:
        if self.frame is not None:
            data = self.frame.readline()
            if not data:
                self.frame = None
                return self._raw_line()
            if data[-1:] != b"\n":
                raise PickleScanError("pickle exhausted before end of frame")
            self.pos += len(data)
            return data
        return self._raw_line()

    def _raw_line(self) -> bytes:
        line = bytearray()
        while not line.endswith(b"\n"):
            byte = self.raw.read(1)
            if not byte:
                break
            line += byte
            if len(line) > 1 << 20:
                raise PickleScanError("a text opcode argument longer than 1 MiB")
        self.pos += len(line)
        return bytes(line)

    def start_frame(self, size: int) -> None:
        if self.frame is not None and self.frame.read() != b"":
            raise PickleScanError("beginning of a new frame before end of current frame")
        data = self.raw_read(size)
        if len(data) < size:
            raise PickleScanError("truncated frame")
        self.frame = io.BytesIO(data)


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` with any pickled ``numpy.dtype`` rebuilt; PickleScanError for anything not plain data."""
    if depth > 32:
        raise PickleScanError("a dtype nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, tuple):
        return tuple(_plain(v, depth + 1) for v in value)
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_plain(k, depth + 1): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, _Opaque) and value.global_name == "numpy.dtype":
        return _rebuild_dtype(value, depth + 1)
    raise PickleScanError("a joblib array whose dtype cannot be read statically")


def _rebuild_dtype(dtype: _Opaque, depth: int = 0, notes: list[str] | None = None) -> Any:
    """The dtype numpy's unpickling builds: ``numpy.dtype(code, align, copy)`` then ``__setstate__``."""
    import numpy as np

    args = dtype.args
    if not isinstance(args, tuple) or not args or not isinstance(args[0], str) or len(args) > 3:
        raise PickleScanError("a joblib array whose dtype cannot be read statically")
    align = bool(args[1]) if len(args) > 1 and isinstance(args[1], bool) else False
    try:
        built = np.dtype(args[0], align, True)  # always a fresh copy: never touch numpy's own dtypes
        declared = built.itemsize
        if dtype.state is not None:
            built.__setstate__(_plain(dtype.state, depth + 1))  # type: ignore[attr-defined]
    except PickleScanError:
        raise
    except Exception as exc:  # numpy refuses the state: so would the real load
        raise PickleScanError(f"a joblib array dtype numpy cannot rebuild ({type(exc).__name__})") from None
    if declared and built.itemsize != declared:
        note = (f"a joblib array dtype '{args[0]}' declares {declared}-byte elements but its pickled state "
                f"gives {built.itemsize}, which is what the loader reads")
        if notes is None:
            raise PickleScanError(note)
        notes.append(note)
    return built


def _wrapper_payload(state: Any, notes: list[str]) -> tuple[int, bool, bool]:
    """(payload bytes, object array?, alignment padding?) the way joblib's read_array sizes them."""
    if isinstance(state, tuple) and len(state) == 2:
        raise PickleScanError("a joblib array wrapper with slot state (joblib never writes this)")
    if not isinstance(state, dict):
        raise PickleScanError("a joblib array wrapper without its state")
    shape = state.get("shape")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise PickleScanError("a joblib array whose shape cannot be read statically")
    count = 1
    for dim in shape:
        if dim < 0:
            raise PickleScanError("a joblib array with a negative dimension")
        count *= dim
    if count >= 2**63:  # joblib multiplies as int64, which would wrap around
        raise PickleScanError("a joblib array whose element count overflows int64")
    dtype = state.get("dtype")
    if not isinstance(dtype, _Opaque) or dtype.global_name != "numpy.dtype":
        raise PickleScanError("a joblib array whose dtype cannot be read statically")
    built = _rebuild_dtype(dtype, 0, notes)
    alignment = state.get("numpy_array_alignment_bytes")
    return count * built.itemsize, bool(built.hasobject), alignment is not None


def _read_array(framed: _Framed, state: Any, result: PickleScan) -> None:
    """Step over the array joblib's ``NumpyArrayWrapper.read_array`` reads after the wrapper's BUILD."""
    size, objects, padded = _wrapper_payload(state, result.inconsistencies)
    result.arrays += 1
    if objects:  # an object array is a nested pickle on the same file, read by a plain unpickler
        _scan_stream(framed.raw, result, joblib_arrays=False)
        return
    if padded:
        pad = framed.raw_read(1)
        if len(pad) != 1:
            raise PickleScanError("truncated joblib array (no padding byte)")
        if len(framed.raw_read(pad[0])) != pad[0]:
            raise PickleScanError("truncated joblib array (padding)")
    left = size
    while left > 0:
        chunk = framed.raw.read(min(left, 1 << 20))
        if not chunk:
            raise PickleScanError(f"truncated: a joblib array needs {size} bytes, the file ends {left} bytes short")
        left -= len(chunk)


def _pop_mark(stack: list[Any]) -> list[Any]:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1 :]
            del stack[i:]
            for item in items:
                _no_wrapper_class(item)
            return items
    raise PickleScanError("MARK expected on the stack")


def _pop(stack: list[Any]) -> Any:
    if not stack:
        raise PickleScanError("stack underflow")
    value = stack.pop()
    _no_wrapper_class(value)
    return value


def _no_wrapper_class(value: Any) -> None:
    """joblib only ever instantiates its wrapper with NEWOBJ; any other use could hide an array."""
    if isinstance(value, _Opaque) and value.kind == "global" and value.global_name == _WRAPPER:
        raise PickleScanError("a joblib array wrapper used in a way joblib never writes")


def _scan_stream(raw: IO[bytes], result: PickleScan, joblib_arrays: bool) -> None:
    framed = _Framed(raw)
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    ops = 0
    try:
        for opcode, arg, _pos in pickletools.genops(framed):  # type: ignore[arg-type]  # read/readline/tell suffice
            ops += 1
            if ops > _MAX_OPS:
                raise PickleScanError("too many opcodes")
            name = opcode.name
            if name == "PROTO":
                continue
            if name == "FRAME":
                framed.start_frame(int(arg or 0))
                continue
            if name == "STOP":
                return
            if name == "MARK":
                stack.append(_MARK)
            elif name in ("GLOBAL", "INST"):
                module, attr = _python3_name(*str(arg).partition(" ")[::2])
                result.add(f"{module}.{attr}")
                _refuse_foreign(f"{module}.{attr}")
                if name == "INST":
                    _pop_mark(stack)
                    if f"{module}.{attr}" == _WRAPPER:
                        raise PickleScanError("a joblib array wrapper used in a way joblib never writes")
                    stack.append(_Opaque("object", f"{module}.{attr}"))
                else:
                    stack.append(_Opaque("global", f"{module}.{attr}"))
            elif name == "STACK_GLOBAL":
                attr, module = _pop(stack), _pop(stack)
                if isinstance(module, str) and isinstance(attr, str):
                    result.add(f"{module}.{attr}")
                    _refuse_foreign(f"{module}.{attr}")
                    stack.append(_Opaque("global", f"{module}.{attr}"))
                else:
                    result.dynamic_globals += 1
                    stack.append(_Opaque("global"))
            elif name in ("EXT1", "EXT2", "EXT4"):  # a global through copyreg's extension registry
                result.dynamic_globals += 1
                stack.append(_Opaque("global"))
            elif name == "MEMOIZE":
                if not stack:
                    raise PickleScanError("MEMOIZE on an empty stack")
                memo[len(memo)] = stack[-1]
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                if not stack:
                    raise PickleScanError("PUT on an empty stack")
                memo[int(arg or 0)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if int(arg or 0) not in memo:
                    raise PickleScanError(f"memo key {arg} was never stored")
                stack.append(memo[int(arg or 0)])
            elif name == "NEWOBJ":
                args = _pop(stack)
                if not stack:
                    raise PickleScanError("stack underflow")
                func = stack.pop()  # the class: a wrapper class is allowed only here
                glob = func.global_name if isinstance(func, _Opaque) else None
                kind = "wrapper" if glob == _WRAPPER and joblib_arrays else "object"
                if glob == _WRAPPER and args != ():
                    raise PickleScanError("a joblib array wrapper built with arguments (joblib never writes this)")
                stack.append(_Opaque(kind, glob, args))
            elif name == "REDUCE":
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
                    if target.kind == "wrapper":
                        if target.state is not None:
                            raise PickleScanError("a joblib array wrapper built twice (joblib never writes this)")
                        target.state = state
                        _read_array(framed, state, result)
                        stack[-1] = _Opaque("array")  # the loader puts the array in the wrapper's place
                    else:
                        if target.global_name == "numpy.dtype" and target.state is not None:
                            raise PickleScanError("a numpy dtype given its state twice (numpy never writes this)")
                        target.state = state
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name == "EMPTY_LIST":
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
                if not stack:
                    raise PickleScanError("DUP on an empty stack")
                stack.append(stack[-1])
            elif name == "NONE":
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
    except (MemoryError, OverflowError):  # a BINBYTES8-style length of petabytes
        raise PickleScanError("an opcode claims an object larger than memory (corrupt or hostile file)") from None
    raise PickleScanError("the pickle has no STOP opcode (truncated)")


def _refuse_foreign(name: str) -> None:
    if name in _FOREIGN_WRAPPERS:
        raise PickleScanError(f"{name} reads its array from another file (joblib < 0.10 format)")


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
