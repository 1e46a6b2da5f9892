"""The unpickler's stack and name lookup, modelled exactly, for the static pickle scan.

``pickle.Unpickler`` keeps a MARK as a fence: MARK moves the current stack onto a metastack
and starts an empty one, so nothing below a mark can be popped except by an opcode that pops
to the mark. :class:`Stack` does the same. :func:`expected_depth` derives from
``pickletools.opcodes`` (``stack_before``/``stack_after``, ``markobject``) where every opcode
must leave the stack; the scanner compares after each opcode, so a handler that pops one
item too many refuses the file as unscannable instead of reading the wrong names (issue 18
item 14: FROZENSET and ADDITEMS each popped one item too many, and a later STACK_GLOBAL read
``collections.OrderedDict`` where the unpickler resolved ``os.system``).

:func:`resolved_name` is ``Unpickler.find_class``'s renaming: protocols 0-2 write Python 2
names, which Python 3 maps through ``_compat_pickle`` (``commands.getoutput`` ->
``subprocess.getoutput``) while the protocol in force (set by the last PROTO opcode, 0
before any) is below 3. It applies to GLOBAL, INST and STACK_GLOBAL alike.
"""

from __future__ import annotations

import _compat_pickle
import pickletools
from collections.abc import Callable
from typing import Any


class PickleScanError(Exception):
    """The file is not a pickle the scanner can read to its end (or is inconsistent)."""

    def __init__(self, message: str, globals_seen: list[str] | None = None) -> None:
        super().__init__(message)
        self.globals_seen: list[str] = list(globals_seen or [])


class Stack:
    """``pickle.Unpickler``'s ``stack`` and ``metastack``; ``check`` sees every value popped
    (joblib's wrapper class may only be popped by NEWOBJ, which pops ``raw``)."""

    def __init__(self, check: Callable[[Any], None]) -> None:
        self.items: list[Any] = []
        self.marks: list[list[Any]] = []
        self.check = check

    def depth(self) -> tuple[int, int]:
        """(marks, items above the topmost mark)."""
        return len(self.marks), len(self.items)

    def push(self, value: Any) -> None:
        self.items.append(value)

    def pop(self, raw: bool = False) -> Any:
        if not self.items:
            raise PickleScanError("stack underflow (an opcode pops what is not there, or below a MARK)")
        value = self.items.pop()
        if not raw:
            self.check(value)
        return value

    def top(self) -> Any:
        if not self.items:
            raise PickleScanError("stack underflow (an opcode reads the top of an empty stack)")
        return self.items[-1]

    def replace_top(self, value: Any) -> None:
        self.top()
        self.items[-1] = value

    def mark(self) -> None:
        self.marks.append(self.items)
        self.items = []

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise PickleScanError("MARK expected on the stack")
        above = self.items
        self.items = self.marks.pop()
        for value in above:
            self.check(value)
        return above


def expected_depth(stack: Stack, opcode: pickletools.OpcodeInfo) -> tuple[int, int]:
    """Where ``opcode`` leaves the stack, from pickletools' table; PickleScanError when the
    unpickler would fail (no MARK to pop to, too few items above or below it)."""
    before, after = list(opcode.stack_before), list(opcode.stack_after)
    marks, items = stack.depth()
    if opcode.name == "POP" and items == 0:  # load_pop pops the MARK when nothing is above it
        before = [pickletools.markobject, pickletools.stackslice]
    if pickletools.markobject in before:
        if not marks:
            raise PickleScanError(f"{opcode.name} needs a MARK on the stack and there is none")
        below = len(stack.marks[-1])
        pops = before.index(pickletools.markobject)  # items under the mark it consumes (APPENDS' list)
        if below < pops:
            raise PickleScanError(f"stack underflow at {opcode.name}")
        return marks - 1, below - pops + len(after)
    if items < len(before):
        raise PickleScanError(f"stack underflow at {opcode.name}")
    if pickletools.markobject in after:
        return marks + 1, 0
    return marks, items - len(before) + len(after)


def resolved_name(module: str, name: str, proto: int, fix_imports: bool = True) -> str:
    """The ``module.name`` that ``Unpickler.find_class`` imports for a lookup of ``(module, name)``."""
    if proto < 3 and fix_imports:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"
