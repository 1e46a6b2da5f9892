"""The catalog schema turned into words: reusable YAML for a resolved target (``mlfit targets show``)
and the field reference page (docs/reference.md, ``python -m mlfit.catalog.describe``).

Both walk the pydantic models of :mod:`mlfit.catalog.schema`, so a new field appears in both
without anyone writing it down twice; a test checks docs/reference.md is up to date. Quantities
are written back in the units people write ("80 ms", "1 GiB", "4.5 GB/s"), chosen so that they
parse back to the same number.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mlfit.catalog import units
from mlfit.catalog.schema import Hardware, MemoryBudget, Profile

# parser -> (what it reads, an example, units to write, most preferred first)
_QUANTITIES: dict[Callable[[object], float], tuple[str, str, list[tuple[str, float]]]] = {
    units.parse_duration: ("duration", "80 ms", [("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)]),
    units.parse_size: ("size", "512 MiB", [("GiB", 2**30), ("GB", 1e9), ("MiB", 2**20), ("MB", 1e6),
                                             ("KiB", 2**10), ("kB", 1e3), ("B", 1)]),
    units.parse_frequency: ("frequency", "1.8 GHz", [("GHz", 1e9), ("MHz", 1e6), ("kHz", 1e3), ("Hz", 1.0)]),
    units.parse_flops: ("compute rate", "24 GFLOPS", [("TFLOPS", 1e12), ("GFLOPS", 1e9), ("MFLOPS", 1e6),
                                                       ("FLOPS", 1.0)]),
    units.parse_bandwidth: ("bandwidth", "25.6 GB/s", [("GB/s", 1e9), ("GiB/s", 2**30), ("MB/s", 1e6),
                                                        ("MiB/s", 2**20), ("kB/s", 1e3), ("B/s", 1)]),
    units.parse_rate: ("rate", "30/s", [("/s", 1.0)]),
    units.parse_memory_limit: ("memory limit", "512 MiB or 512Mi", [("GiB", 2**30), ("GB", 1e9), ("MiB", 2**20),
                                                                    ("MB", 1e6), ("KiB", 2**10), ("B", 1)]),
}


def _round(x: float) -> bool:
    return abs(x - round(x, 3)) <= 1e-9 * max(1.0, abs(x))


def quantity_text(value: float, parser: Callable[[object], float]) -> str:
    """``value`` (base unit) in the first preferred unit where it reads as a round number and parses back."""
    choices = _QUANTITIES[parser][2]
    usable = [(u, s) for u, s in choices if value / s >= 1] or [choices[-1]]
    for unit, scale in usable:
        if _round(value / scale):
            text = f"{round(value / scale, 3):g}{'' if unit.startswith('/') else ' '}{unit}"
            if abs(parser(text) - value) <= 1e-9 * max(1.0, abs(value)):
                return text
    unit, scale = usable[0]
    return f"{value / scale:.12g}{'' if unit.startswith('/') else ' '}{unit}"


def _parser_of(annotation: Any) -> Callable[[object], float] | None:
    """The unit parser of an ``Annotated[float, BeforeValidator(parse_x)]`` anywhere in ``annotation``."""
    for meta in getattr(annotation, "__metadata__", ()):
        func = getattr(meta, "func", None)
        if func in _QUANTITIES:
            return typing.cast(Callable[[object], float], func)
    for arg in typing.get_args(annotation):
        found = _parser_of(arg)
        if found is not None:
            return found
    return None


def _field_parser(info: FieldInfo) -> Callable[[object], float] | None:
    for meta in info.metadata:
        func = getattr(meta, "func", None)
        if func in _QUANTITIES:
            return typing.cast(Callable[[object], float], func)
    return _parser_of(info.annotation)


def _plain(value: Any, parser: Callable[[object], float] | None) -> Any:
    if isinstance(value, BaseModel):
        return to_yaml_data(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {_plain(k, None): _plain(v, parser) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, parser) for v in value]
    if parser is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        return quantity_text(float(value), parser)
    return value


def to_yaml_data(model: BaseModel) -> dict[str, Any]:
    """A catalog model as the YAML a person would write: quantities with units, defaults left out."""
    if isinstance(model, MemoryBudget):  # written as one scalar: '1 GiB' or '60%'
        raise TypeError("MemoryBudget is written by its parent field")
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        keep = name in ("schema_version", "id", "hardware") or info.is_required()
        if not keep and value == info.get_default(call_default_factory=True):
            continue
        if isinstance(value, MemoryBudget):
            out[name] = (quantity_text(value.absolute, units.parse_size) if value.absolute is not None
                         else f"{(value.fraction_of_ram or 0) * 100:g}%")
            continue
        out[name] = _plain(value, _field_parser(info))
    return out


# ---------------------------------------------------------------- the reference page

def _type_text(annotation: Any, info: FieldInfo | None = None) -> str:
    if MemoryBudget in (annotation, *typing.get_args(annotation)) or any(
            MemoryBudget in typing.get_args(a) for a in typing.get_args(annotation)):
        return "size (`1 GiB`) or share of available RAM (`60%`)"
    parser = _field_parser(info) if info is not None else _parser_of(annotation)
    if parser is not None:
        kind, example, _ = _QUANTITIES[parser]
        text = f"{kind} (`{example}`)"
        origin = typing.get_origin(annotation)
        if origin is dict:
            key = typing.get_args(annotation)[0]
            return f"map {_type_text(key)} → {text}"
        return text
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return " or ".join(_type_text(a) for a in args)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is dict:
        return f"map {_type_text(args[0])} → {_type_text(args[1])}"
    if origin is typing.Literal:
        return " or ".join(f"`{a}`" for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " / ".join(f"`{m.value}`" for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return {int: "whole number", float: "number", str: "text", bool: "true/false"}.get(annotation,
                                                                                        str(annotation))


def _default_text(info: FieldInfo, parser: Callable[[object], float] | None) -> str:
    if info.is_required():
        return "**required**"
    default = info.get_default(call_default_factory=True)
    if default is None or default == [] or default == {} or default == "":
        return "-"
    if isinstance(default, BaseModel):
        return "see below"
    value = _plain(default, parser)
    return f"`{value}`" if not isinstance(value, list) else "`[" + ", ".join(map(str, value)) + "]`"


def _models_below(model: type[BaseModel]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []

    def walk(annotation: Any) -> None:
        if annotation is MemoryBudget:  # written as one scalar, described in its parent's row
            return
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found.append(annotation)
                for info in annotation.model_fields.values():
                    walk(info.annotation)
            return
        for arg in typing.get_args(annotation):
            walk(arg)

    for info in model.model_fields.values():
        walk(info.annotation)
    return found


def _section(model: type[BaseModel], level: str) -> list[str]:
    doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    lines = [f"{level} {model.__name__}", ""]
    if doc and not doc.startswith(("Usage docs", "A base class")):
        lines += [doc, ""]
    lines += ["| field | type | default | meaning |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        parser = _field_parser(info)
        meaning = (info.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{name}` | {_type_text(info.annotation, info)} | {_default_text(info, parser)} | {meaning} |")
    return [*lines, ""]


def render_reference() -> str:
    """docs/reference.md: every field of hardware and profile files, from the schema itself."""
    lines = [
        "# Profile and hardware fields",
        "",
        "<!-- Generated from mlfit.catalog.schema by `PYTHONPATH=src python -m mlfit.catalog.describe > "
        "docs/reference.md`; tests/test_reference.py fails when it is out of date. -->",
        "",
        "A **profile** (`profiles/*.yaml`, or your own file given to `--target`) is a deployment: which "
        "hardware, what runs there, and the budgets a model must meet. A **hardware** file "
        "(`hardware/*.yaml`) is a machine, every number with its source. Quantities take units as "
        "people write them (`80 ms`, `512 MiB`, `25.6 GB/s`, `30/s`); unknown keys are refused with "
        "file:line:column. `mlfit targets show NAME` prints a target as a profile you can copy; "
        "`mlfit targets validate FILE` checks your own; `mlfit schema` gives the JSON Schema for editors.",
        "",
    ]
    for top in (Profile, Hardware):
        lines += _section(top, "##")
        lines += [line for sub in _models_below(top) for line in _section(sub, "###")]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_reference())
