"""``--help`` that a newcomer can read: options grouped by their panel (Inputs, Model, Measurement,
Load, Scale, Output) and examples per command.

The help is plain click text (``rich_markup_mode=None`` keeps brackets such as ``mlfit[tensorflow]``
literal), which ignores typer's ``rich_help_panel``; :class:`GroupedCommand` reads the same
attribute and prints one section per panel. :func:`apply` gives every command both, in one place,
so command modules only declare their options.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# Panels in the order a newcomer needs them; options without a panel come first ("Options").
PANEL_ORDER = ("Options", "Targets", "Inputs", "Model", "Measurement", "Load", "Scale", "Suggest", "Output",
               "Compare")

EXAMPLES: dict[str, str] = {
    "check": """\
  mlfit check model.onnx --target edge        # batch from edge's batch_size
  mlfit check model.onnx -t edge -t weak-cpu -o html=report.html --json r.json
  mlfit check tokens.onnx -t edge --dim seq=128 --range input_ids=0:30000
  mlfit check vad.onnx -t edge --value sr=16000   # a scalar: a constant
  mlfit check model.keras -t edge --convert   # edge lacks TensorFlow: convert
  mlfit check model.onnx -t gpu-server --scenario server --qps 50
  mlfit check models/ -t all --strict         # a folder, every target
  mlfit check model.onnx -t edge --baseline main.json  # 1 on a regression
  mlfit check model.onnx -t edge --suggest    # what would fit: threads, int8...""",
    "profile": """\
  mlfit profile model.onnx                    # batch 1: latency, memory
  mlfit profile model.tflite --batch 8 --threads 4 --json profile.json
  mlfit profile model.skops --trust-type sklearn.tree._tree.Tree""",
    "inspect": """\
  mlfit inspect model.onnx                    # inputs, ops, parameters
  mlfit inspect model.onnx --json | jq .inputs""",
    "schema": """\
  mlfit schema > catalog.schema.json          # for your editor
  mlfit schema --kind report                  # the result JSON format""",
    "calibrate": """\
  mlfit calibrate                             # measure this host once; cached
  mlfit calibrate --emit-hardware my-host.yaml""",
    "report": """\
  mlfit report result.json -o html=report.html -o markdown=summary.md""",
    "compare": """\
  mlfit compare main.json branch.json         # exit 1 on a regression
  mlfit compare main.json branch.json --min-effect 10%""",
    "worker": """\
  mlfit worker tcp://scheduler:8786 --target edge  # this host is edge""",
    "targets": """\
  mlfit targets                               # every built-in target
  mlfit targets show edge > my-edge.yaml      # edit, --target my-edge.yaml
  mlfit targets validate my-edge.yaml my-pi.yaml""",
    "show": """\
  mlfit targets show edge > my-edge.yaml      # then: --target my-edge.yaml
  mlfit targets show edge --hardware > my-pi.yaml""",
    "validate": """\
  mlfit targets validate my-edge.yaml my-pi.yaml""",
}


def _unset_is_false(option: Any) -> Any:
    # typer leaves --help's value None when it is not given, and coerces a None flag through a
    # pydantic TypeAdapter: `mlfit targets` and `mlfit --version` imported pydantic and built an
    # adapter just to learn "not given". A False default takes typer's bool fast path instead.
    if option is not None and option.default is None:
        option.default = False
    return option


class QuickHelpGroup(TyperGroup):
    """A command group whose ``--help``, when not given, costs no pydantic import."""

    def get_help_option(self, ctx: Any) -> Any:
        return _unset_is_false(super().get_help_option(ctx))


class GroupedCommand(TyperCommand):
    """A command whose options are listed per ``rich_help_panel``, even in plain-text help."""

    def get_help_option(self, ctx: Any) -> Any:
        return _unset_is_false(super().get_help_option(ctx))

    def format_options(self, ctx: Any, formatter: Any) -> None:  # typer's vendored click types
        args: list[tuple[str, str]] = []
        panels: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append(record)
            else:
                panel = getattr(param, "rich_help_panel", None) or "Options"
                panels.setdefault(panel, []).append(record)
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        order = [p for p in PANEL_ORDER if p in panels] + [p for p in panels if p not in PANEL_ORDER]
        for panel in order:
            with formatter.section(panel):
                formatter.write_dl(panels[panel])

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        if not self.epilog:
            return
        formatter.write_paragraph()
        formatter.write_text("Examples:")
        with formatter.indentation():
            for line in self.epilog.splitlines():  # verbatim: examples are never rewrapped
                formatter.write(f"{'':>{formatter.current_indent}}{line.strip()}\n")


def apply(app: typer.Typer, names: dict[str, str] | None = None) -> None:
    """Give every command of ``app`` (and of its sub-apps) grouped options and its examples."""
    examples = names or EXAMPLES
    if not isinstance(app.info.cls, type) or app.info.cls is TyperGroup:  # unset: typer's Default(None)
        app.info.cls = QuickHelpGroup
    for info in app.registered_commands:
        callback: Any = info.callback
        name = info.name or (callback.__name__.replace("_", "-") if callback else "")
        if info.cls is None or info.cls is TyperCommand:
            info.cls = GroupedCommand
        if info.epilog is None and name in examples:
            info.epilog = examples[name]
    for group in app.registered_groups:
        if group.typer_instance is not None:
            if group.name in examples and group.typer_instance.info.epilog is None:
                group.typer_instance.info.epilog = examples[group.name]
            apply(group.typer_instance, examples)
