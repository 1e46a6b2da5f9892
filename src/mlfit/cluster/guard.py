"""The client never unpickles what a worker sends.

Dask trusts every member of a cluster: besides a task's result (which the client deserializes
with whatever serializer the worker's header names), the client unpickles bytes a worker chose
in other places, for example the result's type in every "key-in-memory" message and the
serializer header of an exception. A worker that can join the cluster could run code on the
machine running ``mlfit check``. Two locks close that:

1. The Dask client is created with ``deserializers=["msgpack"]``: answers fetched through it
   (the results, gathered through the scheduler) must be msgpack; a worker answering with a
   pickle (or the "dask" family, whose header is itself a pickle) is refused before any byte of
   it is interpreted. mlfit's task returns its result as JSON text, which msgpack carries.
2. While the client is connected, a process-wide audit hook refuses every global an unpickler
   would look up (``pickle.find_class``: the only way a pickle runs code), except the handful of
   builtin types Dask's own messages name (``bytes``, ``str``...). Dask's code paths that
   unpickle anyway then fail with :class:`RefusedUnpickling` and are treated as errors; no
   worker-chosen callable is ever resolved.

Sending is not affected: the client still pickles the task function and its arguments, as Dask
does; it is the workers' answers that are not trusted.
"""

from __future__ import annotations

import pickle
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# What Dask's own messages need (the "dask" serialization family names its type, bytes, as a
# pickle; a result's type is str): builtin value types whose construction runs no code.
ALLOWED_GLOBALS = frozenset({("builtins", name) for name in ("bytes", "bytearray", "str", "int", "float",
                                                              "complex", "bool", "tuple", "list", "dict",
                                                              "set", "frozenset")})


class RefusedUnpickling(pickle.UnpicklingError, TypeError):
    """An unpickler in this process tried to look up a global while the guard was on.

    Also a TypeError: where Dask tolerates a traceback it cannot rebuild (``clean_exception``
    catches TypeError), a refused one degrades the same way instead of escaping."""


_state = threading.Lock()
_depth = 0
_installed = False
refused: list[str] = []  # module.name of each global refused (for the report's notes and tests)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _depth and event == "pickle.find_class":
        module, name = str(args[0]), str(args[1])
        if (module, name) not in ALLOWED_GLOBALS:
            if len(refused) < 100:
                refused.append(f"{module}.{name}")
            raise RefusedUnpickling(f"mlfit refused to unpickle {module}.{name} received from the cluster")


@contextmanager
def no_unpickling() -> Iterator[None]:
    """Refuse unpickling of anything but builtin value types in this whole process (every thread:
    Dask's client runs its own), for the duration of the block."""
    global _depth, _installed
    with _state:
        if not _installed:
            sys.addaudithook(_hook)  # audit hooks cannot be removed: it stays, inert, off the block
            _installed = True
        _depth += 1
    try:
        yield
    finally:
        with _state:
            _depth -= 1
