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

The symbolic stack models only plain values (str, bytes, numbers, tuples, lists, dicts) and
opaque markers for everything else; no object is ever created. Its shape is the unpickler's
exactly (:mod:`mlfit.safety.pickle_vm`: MARK fences, every opcode's effect checked against
pickletools' table), names are renamed as ``find_class`` renames them for the protocol in
force, and what cannot be followed statically (a STACK_GLOBAL on computed values, copyreg
extension codes, persistent ids, out-of-band buffers) is refused as unscannable, so the list
of globals is the list the unpickler would look up.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import pickletools
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mlfit.safety.pickle_vm import PickleScanError, Stack, expected_depth, resolved_name

__all__ = ["PickleScan", "PickleScanError", "compression_of", "looks_like_pickle", "open_stream", "scan_pickle"]

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


@dataclass
class PickleScan:
    """What a pickle would do when loaded."""

    compression: str | None = None
    globals: list[str] = field(default_factory=list)  # first-seen order, unique
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
        self.lines: list[bytes] = []  # the raw lines read for the current opcode (GLOBAL and INST names)

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
        line = self._readline()
        self.lines.append(line)
        return line

    def _readline(self) -> bytes:
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


def _no_wrapper_class(value: Any) -> None:
    """joblib only ever instantiates its wrapper with NEWOBJ; any other use could hide an array."""
    if isinstance(value, _Opaque) and value.kind == "global" and value.global_name == _WRAPPER:
        raise PickleScanError("a joblib array wrapper used in a way joblib never writes")


# Opcodes that push their argument, as the unpickler builds it (default encoding "ASCII").
_CONSTANTS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
                        "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
                        "BINUNICODE8"})
_PY2_STRINGS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING"})  # decoded as ASCII by the loader
# Opcodes whose values never matter to a name: their stack effect alone, from pickletools' table.
_OPAQUE_EFFECT = frozenset({"EMPTY_SET", "ADDITEMS", "FROZENSET", "BYTEARRAY8", "READONLY_BUFFER"})
# Opcodes no static scan can follow: what they produce is decided at load time, outside the file.
_UNSCANNABLE = {
    "EXT1": "a global taken from copyreg's extension registry (its name is not in the file)",
    "EXT2": "a global taken from copyreg's extension registry (its name is not in the file)",
    "EXT4": "a global taken from copyreg's extension registry (its name is not in the file)",
    "PERSID": "a persistent id (the loader has no persistent_load)",
    "BINPERSID": "a persistent id (the loader has no persistent_load)",
    "NEXT_BUFFER": "an out-of-band buffer (the loader is given none)",
}
_HIGHEST_PROTOCOL = 5


class _Scanner:
    """One unpickler's run over the opcode stream, modelled without creating any object.

    Every opcode's effect on the (MARK-fenced) stack is checked against pickletools' table
    (:func:`mlfit.safety.pickle_vm.expected_depth`); a mismatch, an underflow or an opcode
    that cannot be modelled refuses the file, with the globals read so far.
    """

    def __init__(self, raw: IO[bytes], result: PickleScan, joblib_arrays: bool) -> None:
        self.framed = _Framed(raw)
        self.result = result
        self.joblib_arrays = joblib_arrays
        self.stack = Stack(_no_wrapper_class)
        self.memo: dict[int, Any] = {}
        self.proto = 0  # pickle.Unpickler.load starts at 0; PROTO sets it

    def run(self) -> None:
        ops = 0
        try:
            for opcode, arg, pos in pickletools.genops(self.framed):  # type: ignore[arg-type]  # read/readline/tell suffice
                ops += 1
                if ops > _MAX_OPS:
                    raise PickleScanError("too many opcodes")
                lines, self.framed.lines = self.framed.lines, []
                if opcode.name == "STOP":  # load_stop pops the result; bytes after it are never read
                    self.stack.pop(raw=True)
                    return
                expected = expected_depth(self.stack, opcode)
                self._step(opcode.name, arg, lines)
                if self.stack.depth() != expected:
                    raise PickleScanError(f"the stack after {opcode.name} at byte {pos} does not match what "
                                          "the unpickler leaves")
        except ValueError as exc:  # pickletools' own complaints: bad opcode, truncated argument
            raise PickleScanError(str(exc)) from None
        except (MemoryError, OverflowError):  # a BINBYTES8-style length of petabytes
            raise PickleScanError("an opcode claims an object larger than memory (corrupt or hostile file)") from None
        raise PickleScanError("the pickle has no STOP opcode (truncated)")

    def _step(self, name: str, arg: Any, lines: list[bytes]) -> None:
        stack = self.stack
        if name in _CONSTANTS:
            stack.push(arg)
        elif name in _PY2_STRINGS:
            if not str(arg).isascii():
                raise PickleScanError(f"a {name} that is not ASCII (the loader cannot decode it)")
            stack.push(arg)
        elif name in _UNSCANNABLE:
            raise PickleScanError(_UNSCANNABLE[name])
        elif name in _OPAQUE_EFFECT:
            self._opaque_effect(name)
        elif name in ("GLOBAL", "INST", "STACK_GLOBAL"):
            self._global(name, lines)
        elif name in ("NEWOBJ", "NEWOBJ_EX", "REDUCE", "OBJ", "BUILD"):
            self._object(name)
        elif name in _MEMO_OPS:
            self._memo(name, arg)
        else:
            self._plain(name, arg)

    def _plain(self, name: str, arg: Any) -> None:
        stack = self.stack
        if name == "PROTO":
            if not 0 <= int(arg) <= _HIGHEST_PROTOCOL:
                raise PickleScanError(f"unsupported pickle protocol {arg}")
            self.proto = int(arg)
        elif name == "FRAME":
            self.framed.start_frame(int(arg or 0))
        elif name == "MARK":
            stack.mark()
        elif name in _EMPTY:
            stack.push(_EMPTY[name]())
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.push(None if name == "NONE" else name == "NEWTRUE")
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            stack.push(tuple([stack.pop() for _ in range(int(name[-1]))][::-1]))
        elif name in ("TUPLE", "LIST", "DICT"):
            items = stack.pop_mark()
            stack.push(tuple(items) if name == "TUPLE" else list(items) if name == "LIST" else _to_dict(items))
        elif name in ("APPEND", "APPENDS"):
            values = [stack.pop()] if name == "APPEND" else stack.pop_mark()
            if isinstance(stack.top(), list):
                stack.top().extend(values)
        elif name in ("SETITEM", "SETITEMS"):
            items = [*reversed([stack.pop(), stack.pop()])] if name == "SETITEM" else stack.pop_mark()
            if isinstance(stack.top(), dict):
                stack.top().update(_to_dict(items))
        elif name == "POP":
            if stack.items:
                stack.pop()
            else:  # load_pop: nothing above the MARK, so the MARK goes
                stack.pop_mark()
        elif name == "POP_MARK":
            stack.pop_mark()
        elif name == "DUP":
            stack.push(stack.top())
        else:
            raise PickleScanError(f"opcode {name} cannot be modelled by the scanner")

    def _opaque_effect(self, name: str) -> None:
        """Apply the table's stack effect with opaque values (no name can come out of these)."""
        opcode = _OPCODES[name]
        before = opcode.stack_before
        pops = len(before)
        if pickletools.markobject in before:
            self.stack.pop_mark()
            pops = before.index(pickletools.markobject)
        for _ in range(pops):
            self.stack.pop()
        for _ in opcode.stack_after:
            self.stack.push(_Opaque())

    def _memo(self, name: str, arg: Any) -> None:
        if name == "MEMOIZE":
            self.memo[len(self.memo)] = self.stack.top()
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            if int(arg) < 0:
                raise PickleScanError(f"negative {name} argument")
            self.memo[int(arg)] = self.stack.top()
        else:
            if int(arg) not in self.memo:
                raise PickleScanError(f"memo key {arg} was never stored")
            self.stack.push(self.memo[int(arg)])

    def _global(self, name: str, lines: list[bytes]) -> None:
        stack = self.stack
        if name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            if type(module) is not str or type(attr) is not str:  # the loader's own test
                raise PickleScanError("STACK_GLOBAL on values that are not plain strings (a name built at "
                                      "load time)")
        else:  # read as the loader reads them: the raw lines (pickletools would undo escapes)
            if len(lines) != 2:
                raise PickleScanError(f"{name} without its two name lines")
            try:
                module, attr = (line[:-1].decode("utf-8" if name == "GLOBAL" else "ascii") for line in lines)
            except UnicodeDecodeError:
                raise PickleScanError(f"a {name} name the loader cannot decode") from None
        full = resolved_name(module, attr, self.proto)
        self.result.add(full)
        _refuse_foreign(full)
        if name == "INST":  # find_class first, then the arguments above the MARK
            stack.pop_mark()
            if full == _WRAPPER:
                raise PickleScanError("a joblib array wrapper used in a way joblib never writes")
            stack.push(_Opaque("object", full))
        else:
            stack.push(_Opaque("global", full))

    def _object(self, name: str) -> None:
        stack = self.stack
        if name == "NEWOBJ":
            args = stack.pop()
            func = stack.pop(raw=True)  # the class: a wrapper class is allowed only here
            glob = func.global_name if isinstance(func, _Opaque) else None
            kind = "wrapper" if glob == _WRAPPER and self.joblib_arrays else "object"
            if glob == _WRAPPER and args != ():
                raise PickleScanError("a joblib array wrapper built with arguments (joblib never writes this)")
            stack.push(_Opaque(kind, glob, args))
        elif name in ("REDUCE", "NEWOBJ_EX"):
            if name == "NEWOBJ_EX":
                stack.pop()  # keyword arguments
            args, func = stack.pop(), stack.pop()
            stack.push(_Opaque("object", func.global_name if isinstance(func, _Opaque) else None, args))
        elif name == "OBJ":
            items = stack.pop_mark()
            if not items:
                raise PickleScanError("OBJ with no class above its MARK")
            stack.push(_Opaque("object", items[0].global_name if isinstance(items[0], _Opaque) else None))
        else:
            self._build(stack.pop())

    def _build(self, state: Any) -> None:
        target = self.stack.top()
        if not isinstance(target, _Opaque):
            return
        if target.kind == "wrapper":
            if target.state is not None:
                raise PickleScanError("a joblib array wrapper built twice (joblib never writes this)")
            target.state = state
            _read_array(self.framed, state, self.result)
            self.stack.replace_top(_Opaque("array"))  # the loader puts the array in the wrapper's place
            return
        if target.global_name == "numpy.dtype" and target.state is not None:
            raise PickleScanError("a numpy dtype given its state twice (numpy never writes this)")
        target.state = state


_OPCODES = {op.name: op for op in pickletools.opcodes}
_MEMO_OPS = frozenset({"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})
_EMPTY: dict[str, Callable[[], Any]] = {"EMPTY_DICT": dict, "EMPTY_LIST": list, "EMPTY_TUPLE": tuple}


def _scan_stream(raw: IO[bytes], result: PickleScan, joblib_arrays: bool) -> None:
    _Scanner(raw, result, joblib_arrays).run()


def _refuse_foreign(name: str) -> None:
    if name in _FOREIGN_WRAPPERS:
        raise PickleScanError(f"{name} reads its array from another file (joblib < 0.10 format)")


def _to_dict(items: list[Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for i in range(0, len(items) - 1, 2):
        _set(out, items[i], items[i + 1])
    return out


def _set(target: dict[Any, Any], key: Any, value: Any) -> None:
    with contextlib.suppress(TypeError):  # an unhashable key (a list): only string keys matter here
        target[key] = value
