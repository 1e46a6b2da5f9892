"""A tracing unpickler and a generator of well-formed pickle programs, to check the static
pickle scan against what the real unpickler looks up (issue 18 item 14).

:class:`TracingUnpickler` is ``pickle._Unpickler`` (the implementation joblib's loader
subclasses) running its own ``find_class`` (the Python 2 renaming for protocols below 3,
dotted names for 4 and up) with the import machinery it calls swapped for stubs: every
lookup is recorded as ``module.name`` after renaming, and a harmless stub class comes back,
never the real object. Nothing named in a pickle is imported or called.

:func:`program` turns a list of small integers (what hypothesis draws and shrinks) into a
pickle: each integer picks one of the opcodes that are well formed on the current stack (a
model of the unpickler's stack with its MARK fences and memo), so most programs load to
their end under the tracer.
"""

from __future__ import annotations

import io
import pickle
import struct
import types
from typing import Any


class _StubMeta(type):
    def __getattr__(cls, attr: str) -> Any:  # a dotted name (protocol 4+) walks into a stub
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _stub(f"{cls._path}.{attr}")  # type: ignore[attr-defined]


class Stub(metaclass=_StubMeta):
    """What a lookup returns: callable, buildable, appendable; does nothing."""

    _path = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Stub:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any = None) -> None:
        pass

    def append(self, value: Any = None) -> None:
        pass

    def extend(self, values: Any = None) -> None:
        pass

    def add(self, value: Any = None) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Stub:
        return self


def _stub(path: str) -> type[Stub]:
    return _StubMeta(path, (Stub,), {"_path": path})


class _Module:
    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        return _stub(f"{self.name}.{attr}")


class _Modules:
    def __getitem__(self, name: str) -> _Module:
        return _Module(name)


class TracingUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """Records every ``find_class`` lookup, after the unpickler's own renaming."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.lookups: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        namespace = pickle.__dict__
        saved = {key: namespace[key] for key in ("sys", "__import__") if key in namespace}
        namespace["sys"] = types.SimpleNamespace(audit=lambda *args: None, modules=_Modules())
        namespace["__import__"] = lambda *args, **kwargs: None
        try:
            found = super().find_class(module, name)
        finally:
            for key in ("sys", "__import__"):
                namespace.pop(key, None)
            namespace.update(saved)
        self.lookups.append(found._path)
        return found


def trace(data: bytes) -> tuple[list[str], bool]:
    """(the names the unpickler looks up, in order and unique; True when it loaded to STOP)."""
    tracer = TracingUnpickler(data)
    try:
        tracer.load()
        done = True
    except Exception:  # the real load would stop here too: what it looked up so far counts
        done = False
    return list(dict.fromkeys(tracer.lookups)), done


# Names that exercise find_class's renaming (IMPORT_MAPPING, NAME_MAPPING), dotted names,
# and plain ones; modules and attributes also combine freely through STACK_GLOBAL.
PAIRS = [("os", "system"), ("collections", "OrderedDict"), ("__builtin__", "eval"), ("commands", "getoutput"),
         ("itertools", "izip"), ("exceptions", "StandardError"), ("UserDict", "UserDict"),
         ("copy_reg", "_reconstructor"), ("os", "path.join"), ("Queue", "Empty"), ("__builtin__", "xrange"),
         ("builtins", "getattr")]
STRINGS = sorted({part for pair in PAIRS for part in pair})
_HASHABLE = {"str", "int", "none", "bytes", "fset", "cls", "obj", "tuple"}


class _Model:
    """The generator's view of the unpickler's stack: type tags, MARK fences, memo."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.marks: list[list[str]] = []
        self.memo: dict[int, str] = {}
        self.out = bytearray()

    def emit(self, data: bytes, *pushes: str) -> None:
        self.out += data
        self.items.extend(pushes)

    def top(self, *tags: str) -> bool:
        """True when the items above the topmost MARK end with ``tags``."""
        return len(self.items) >= len(tags) and all(t == "*" or t == got for t, got in
                                                    zip(tags, self.items[len(self.items) - len(tags):], strict=True))

    def below_mark(self, tag: str) -> bool:
        return bool(self.marks) and bool(self.marks[-1]) and self.marks[-1][-1] == tag

    def pop_mark(self) -> list[str]:
        above, self.items = self.items, self.marks.pop()
        return above


def _string(r: int) -> bytes:
    text = STRINGS[r % len(STRINGS)]
    raw = text.encode()
    kind = (r // len(STRINGS)) % 6
    if kind == 0:
        return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE
    if kind == 1:
        return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE
    if kind == 2:
        return b"V" + raw + b"\n"  # UNICODE
    if kind == 3:
        return b"U" + bytes([len(raw)]) + raw  # SHORT_BINSTRING (ASCII: a str to Python 3)
    if kind == 4:
        return b"T" + struct.pack("<i", len(raw)) + raw  # BINSTRING
    return b"S'" + raw + b"'\n"  # STRING


def _steps(m: _Model, r: int) -> list[tuple[bytes, tuple[str, ...], int]]:
    """Every step valid now: (bytes, tags pushed, items popped above the mark; -1: pop to the mark)."""
    pair = PAIRS[r % len(PAIRS)]
    steps: list[tuple[bytes, tuple[str, ...], int]] = [
        (_string(r), ("str",), 0), (b"K" + bytes([r % 256]), ("int",), 0), (b"I%d\n" % (r % 1000), ("int",), 0),
        (b"N", ("none",), 0), (b"C\x01x", ("bytes",), 0), (b"(", (), 0),
        (b"c" + pair[0].encode() + b"\n" + pair[1].encode() + b"\n", ("cls",), 0),
        (b"]", ("list",), 0), (b"}", ("dict",), 0), (b"\x8f", ("set",), 0), (b")", ("tuple",), 0),
        (b"\x80" + bytes([r % 6]), (), 0),  # PROTO, mid-stream too: find_class follows the latest
    ]
    # Short MARK idioms as single steps, so that mark-popping opcodes meet names on the stack
    # often: an empty frozenset, a set filled by ADDITEMS, APPENDS/SETITEMS/TUPLE/POP on a MARK.
    steps += [(b"(\x91", ("fset",), 0), (b"\x8f(\x90", ("set",), 0), (b"](e", ("list",), 0),
              (b"}(u", ("dict",), 0), (b"(t", ("tuple",), 0), (b"(0", (), 0)]
    steps += [(b"(\x910", (), 0), (b"\x8f(\x900", (), 0)] * 2  # net nothing on the unpickler's stack
    # Strings and STACK_GLOBAL weigh more: names read off the stack are where a miscount shows.
    steps += [(_string(r // k), ("str",), 0) for k in (7, 13, 29)]
    steps += [(_string(r // k) + _string(r // (k * 3)), ("str", "str"), 0) for k in (5, 11, 17)]
    if m.top("str", "str"):
        steps += [(b"\x93", ("cls",), 2)] * 6  # STACK_GLOBAL
    if m.items:
        steps += [(b"0", (), 1), (b"0", (), 1), (b"2", (m.items[-1], m.items[-1]), 1), (b"\x85", ("tuple",), 1),
                  (b"\x94", (m.items[-1],), 1), (b"q" + bytes([r % 256]), (m.items[-1],), 1),
                  (b"p%d\n" % (r % 300), (m.items[-1],), 1), (b"r" + struct.pack("<I", r % 70000), (m.items[-1],), 1)]
    elif m.marks:
        steps.append((b"0", (), -1))  # POP with nothing above the MARK pops the MARK
    for key, tag in list(m.memo.items())[:3]:
        steps += [(b"h" + bytes([key]) if key < 256 else b"j" + struct.pack("<I", key), (tag,), 0),
                  (b"g%d\n" % key, (tag,), 0)]
    if len(m.items) >= 2:
        steps += [(b"\x86", ("tuple",), 2)] + ([(b"\x87", ("tuple",), 3)] if len(m.items) >= 3 else [])
    if m.top("list", "*"):
        steps.append((b"a", ("list",), 2))
    if m.top("dict", "*", "*") and m.items[-2] in _HASHABLE:
        steps.append((b"s", ("dict",), 3))
    if m.top("cls", "tuple") or m.top("cls", "utuple"):
        steps += [(b"R", ("obj",), 2), (b"\x81", ("obj",), 2)]  # REDUCE, NEWOBJ
    if m.top("cls", "tuple", "dict"):
        steps.append((b"\x92", ("obj",), 3))  # NEWOBJ_EX
    if m.top("obj", "*") or m.top("cls", "*"):
        steps.append((b"b", (m.items[-2],), 2))  # BUILD
    if m.marks:
        hashable = all(tag in _HASHABLE for tag in m.items)
        steps += [(b"t", ("tuple" if hashable else "utuple",), -1), (b"l", ("list",), -1), (b"1", (), -1),
                  (b"i" + pair[0].encode() + b"\n" + pair[1].encode() + b"\n", ("obj",), -1)]
        if hashable:
            steps.append((b"\x91", ("fset",), -1))  # FROZENSET
            if m.below_mark("set"):
                steps.append((b"\x90", (), -1))  # ADDITEMS: the set stays
        if m.below_mark("list"):
            steps.append((b"e", (), -1))  # APPENDS: the list stays
        if len(m.items) % 2 == 0 and all(tag in _HASHABLE for tag in m.items[::2]):
            steps.append((b"d", ("dict",), -1))
            if m.below_mark("dict"):
                steps.append((b"u", (), -1))  # SETITEMS: the dict stays
        if m.items and m.items[0] == "cls":
            steps.append((b"o", ("obj",), -1))  # OBJ
    return steps


def program(choices: list[tuple[int, int]], proto: int, framed: bool) -> bytes:
    """A pickle program from ``choices`` ((which step, a parameter) pairs)."""
    m = _Model()
    for pick, r in choices:
        steps = _steps(m, r)
        data, pushes, pops = steps[pick % len(steps)]
        if pops == -1:
            m.pop_mark()
        else:
            del m.items[len(m.items) - pops:]
        if data == b"(":
            m.marks.append(m.items)
            m.items = []
        if data[:1] in (b"\x94", b"q", b"p", b"r"):  # memo stores: remember the key and its tag
            key = len(m.memo) if data[:1] == b"\x94" else (data[1] if data[:1] == b"q" else int(
                data[1:-1]) if data[:1] == b"p" else struct.unpack("<I", data[1:])[0])
            m.memo[key] = pushes[0]
        m.emit(data, *pushes)
    if not m.items:
        m.emit(b"N", "none")
    body = bytes(m.out) + b"."
    if framed and proto >= 4:
        body = b"\x95" + struct.pack("<Q", len(body)) + body
    return (b"\x80" + bytes([proto]) if proto >= 2 else b"") + body
