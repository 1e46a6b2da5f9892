"""Safe YAML loading that remembers where every value came from.

We compose the node tree with PyYAML's safe machinery and convert it ourselves, so
that we can refuse duplicate keys, non-standard tags (``!!python/object``) and alias
bombs, and keep a ``path -> (line, column)`` table for error messages.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlfit.errors import ConfigError

MAX_FILE_BYTES = 1 << 20  # a deployment profile is a few hundred bytes; 1 MiB is generous
MAX_NODES = 20_000  # bounds alias expansion ("billion laughs")
MAX_DEPTH = 32  # a profile nests three or four levels; deep nesting only exhausts the stack
# Nodes composed (keys and values, an alias counting once): checked while parsing, so a large
# document is refused after this many nodes whatever its size; MAX_NODES then bounds what
# aliases expand to.
MAX_COMPOSED = 2 * MAX_NODES + 64

_STANDARD_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
}

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Located:
    """A loaded document and where each of its values sits in the file."""

    data: Any
    source: str
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Sequence[str | int], at_key: bool = False) -> str:
        """``file:line:column`` of the value (or its key) at the deepest known prefix of ``path``."""
        table = self.key_marks if at_key else self.marks
        key: Path_ = tuple(path)
        while key and key not in table:
            key = key[:-1]
        line, col = table.get(key, self.marks.get(key, (1, 1)))
        return f"{self.source}:{line}:{col}"


def _error(source: str, mark: yaml.Mark | None, message: str) -> ConfigError:
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    return ConfigError(f"{where}: {message}")


class _Converter:
    def __init__(self, source: str) -> None:
        self.source = source
        self.marks: dict[Path_, tuple[int, int]] = {}
        self.key_marks: dict[Path_, tuple[int, int]] = {}
        self.nodes = 0
        self.scalar_loader = yaml.SafeLoader("")

    def convert(self, node: yaml.Node, path: Path_) -> Any:
        self.nodes += 1
        if len(path) > MAX_DEPTH:
            raise _error(self.source, node.start_mark, f"values nested more than {MAX_DEPTH} levels deep; "
                         "a profile is a shallow document")
        if self.nodes > MAX_NODES:
            raise _error(self.source, node.start_mark, f"document expands to more than {MAX_NODES} values "
                         "(alias bomb?); write the values out instead of using aliases")
        self.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if node.tag not in _STANDARD_TAGS:
            raise _error(self.source, node.start_mark,
                         f"tag '{node.tag}' is not allowed; profiles are plain data (remove the tag)")
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _error(self.source, key_node.start_mark, "mapping keys must be plain strings")
                key = str(self.scalar_loader.construct_scalar(key_node))
                if key in result:
                    raise _error(self.source, key_node.start_mark, f"duplicate key '{key}'; keep only one")
                key_path = (*path, key)
                self.key_marks[key_path] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                result[key] = self.convert(value_node, key_path)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar_loader.construct_object(node)


def _read_text(path: Path) -> str:
    """The text of a YAML file: only a regular file is read (a FIFO or ``/dev/zero`` named as a
    profile or as a profile's ``hardware:`` is refused at once, never read; mlfit.safeio), and
    at most MAX_FILE_BYTES of it, even when its size on disk says less."""
    from mlfit import safeio

    source = str(path)
    try:
        with safeio.open_regular(path, "the YAML file", ConfigError) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise ConfigError(f"{source}:1:1: file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit "
                                  "for profiles", "a profile or hardware file is a short YAML document")
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror or exc})", "check the path") from None
    if len(data) > MAX_FILE_BYTES:  # st_size lied (a /proc file): never read past the limit
        raise ConfigError(f"{source}:1:1: file is over the {MAX_FILE_BYTES}-byte limit for profiles",
                          "a profile or hardware file is a short YAML document")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}:1:1: cannot read as UTF-8 text ({exc})") from None


def load_yaml(path: Path) -> Located:
    """Load one YAML document safely; every problem is a ConfigError with a location."""
    return load_yaml_text(_read_text(path), str(path))


def load_yaml_documents(path: Path) -> list[Located]:
    """Load every document of a multi-document YAML file (``---`` separated, as in Kubernetes
    manifests), with the same bounds as :func:`load_yaml` over the whole file."""
    return _load_all(_read_text(path), str(path))


_C_PARSER: Any
try:
    from yaml._yaml import CParser  # libyaml, when PyYAML was built with it

    _C_PARSER = CParser
except ImportError:  # pragma: no cover - PyYAML without libyaml: its own (slower) parser
    _C_PARSER = None


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that counts nodes and nesting *while* it composes: a 1 MiB document
    of tiny values is refused after MAX_COMPOSED nodes, not after composing all of it (the
    refusal took a minute when values were counted only after composition), and deep nesting
    is refused before the recursive composer could exhaust the stack."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.composed = 0
        self.depth = 0
        # Events from libyaml (C) where PyYAML has it: about five times faster than PyYAML's own
        # scanner and parser; the composer over them stays this one, which counts as it goes.
        self.c_events: Any = _C_PARSER(stream) if _C_PARSER is not None else None

    def check_event(self, *choices: Any) -> bool:
        if self.c_events is None:
            return bool(super().check_event(*choices))
        return bool(self.c_events.check_event(*choices))

    def peek_event(self) -> Any:
        return super().peek_event() if self.c_events is None else self.c_events.peek_event()

    def get_event(self) -> Any:
        return super().get_event() if self.c_events is None else self.c_events.get_event()

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.composed += 1
        if self.composed > MAX_COMPOSED:
            raise _error(self.source, self.peek_event().start_mark,
                         f"document has more than {MAX_COMPOSED} keys and values; a profile or manifest is "
                         "a short document")
        if self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):  # libyaml: exact classes only
            if self.depth >= MAX_DEPTH:
                raise _error(self.source, self.peek_event().start_mark,
                             f"values nested more than {MAX_DEPTH} levels deep; a profile is a shallow document")
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1
        return super().compose_node(parent, index)


def _compose_all(text: str, source: str) -> list[yaml.Node]:
    loader = _BoundedLoader(text, source)
    try:
        nodes = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                nodes.append(node)
        return nodes
    finally:
        loader.dispose()


def load_yaml_text(text: str, source: str = "<string>") -> Located:
    documents = _load_all(text, source)
    if len(documents) != 1:
        raise ConfigError(f"{source}:1:1: expected exactly one YAML document, found {len(documents)}")
    return documents[0]


def _load_all(text: str, source: str) -> list[Located]:
    try:
        nodes = _compose_all(text, source)
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or str(exc)
        if "maximum nesting depth" in problem:  # libyaml's own limit (1000), met while it looks ahead
            raise _error(source, exc.problem_mark, f"values nested more than {MAX_DEPTH} levels deep; "
                         "a profile is a shallow document") from None
        raise _error(source, exc.problem_mark, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}:1:1: invalid YAML: {exc}") from None
    except RecursionError:  # PyYAML composes recursively: thousands of '[' exhaust the stack
        raise ConfigError(f"{source}:1:1: invalid YAML: nested too deeply (over {MAX_DEPTH} levels)",
                          "a profile is a shallow document") from None
    documents = []
    converter = _Converter(source)  # one converter: MAX_NODES bounds the whole file, not each document
    for node in nodes:
        converter.marks, converter.key_marks = {}, {}
        try:
            data = converter.convert(node, ())
        except yaml.constructor.ConstructorError as exc:
            raise _error(source, exc.problem_mark, f"invalid value: {exc.problem}") from None
        except (ValueError, OverflowError) as exc:
            raise ConfigError(f"{source}:1:1: invalid value: {exc}") from None
        documents.append(Located(data=data, source=source, marks=converter.marks, key_marks=converter.key_marks))
    return documents
