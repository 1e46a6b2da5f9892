"""Render `mlfit inspect` facts for the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlfit.catalog.units import format_size
from mlfit.errors import printable


def _dims(shape: list[Any]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def render_inspect(facts: dict[str, Any]) -> RenderableType:
    io = Table(title="Inputs and outputs", title_justify="left", header_style="bold")
    for column in ("kind", "name", "dtype", "shape"):
        io.add_column(column)
    for kind in ("inputs", "outputs"):
        for t in facts.get(kind, []):
            io.add_row(kind[:-1], Text(printable(t["name"])), Text(printable(t["dtype"])),
                       Text(printable(_dims(t["shape"]))))
    params = facts.get("parameters", 0)
    by_dtype = ", ".join(f"{k} {format_size(v)}" for k, v in facts.get("parameter_bytes", {}).items())
    lines = [f"{facts['path']}: {facts['format']}, {format_size(facts['size_bytes'])} on disk"]
    if facts.get("opset") is not None:  # ONNX only
        lines.append(f"opset {facts['opset']} (IR {facts.get('ir_version')}), producer {facts.get('producer') or '-'}")
    if facts.get("signature"):
        lines.append(f"signature: {facts['signature']}")
    if "parameters" in facts:  # formats whose file states them (not pickles, not unreadable Keras weights)
        lines.append(f"parameters: {params:,} ({by_dtype or 'none'})")
    if facts.get("dtypes"):
        lines.append(f"dtypes: {', '.join(facts['dtypes'])}")
    if facts.get("flops") is not None:
        flops, macs = facts["flops"], facts.get("macs", 0)
        lines.append(f"FLOPs per inference: {flops / 1e6:,.1f} M ({macs / 1e6:,.1f} M MACs)" if flops >= 1e6
                     else f"FLOPs per inference: {flops:,} ({macs:,} MACs)")  # a small model: not "0.0 M"
    if facts.get("activation_peak_bytes") is not None:
        assumed = (facts.get("shape_inference") or {}).get("assumed_dims") or {}
        given = ", ".join(f"{k}={v}" for k, v in assumed.items())
        lines.append(f"peak activations: {format_size(facts['activation_peak_bytes'])}"
                     + (f" (assuming {given})" if assumed else ""))
    if facts.get("dynamic_dims"):
        lines.append(f"symbolic dims: {', '.join(facts['dynamic_dims'])} (fill them with --dim NAME=VALUE)")
    if facts.get("control_flow"):
        lines.append(f"control flow: {', '.join(facts['control_flow'])}")
    if facts.get("custom_domains"):
        lines.append(f"custom op domains: {', '.join(facts['custom_domains'])}")
    lines.extend(f"note: {n}" for n in facts.get("notes", []))
    label = facts.get("op_label", "op")  # "type" for scikit-learn files: the types they hold
    counted = "nodes" if label == "op" else f"{label}s"
    ops = Table(title=f"{label.capitalize()}s ({facts.get('node_count', 0)} {counted})", title_justify="left",
                header_style="bold")
    ops.add_column(label)
    ops.add_column("count", justify="right")
    for op, count in list(facts.get("ops", {}).items())[:30]:
        ops.add_row(Text(printable(op)), str(count))
    # Names come from the model file: printable, and rich Text (never markup, which '[/x]' would break).
    return Group(Text("\n".join(printable(line) for line in lines)), io, ops)
