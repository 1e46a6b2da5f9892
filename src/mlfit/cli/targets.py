"""``mlfit targets``: list, show and validate hardware and deployment profiles."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlfit.errors import ExitCode

if TYPE_CHECKING:
    from mlfit.catalog.builtin import TargetRow

app = typer.Typer(help="List built-in targets, show one resolved, or validate your own YAML files.",
                  no_args_is_help=False, invoke_without_command=True, rich_markup_mode=None)


@app.callback(invoke_without_command=True)
def list_targets(ctx: typer.Context) -> None:
    """List built-in targets with their hardware."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from mlfit.catalog.builtin import builtin_rows

    table = Table(title="Built-in targets", title_justify="left", header_style="bold")
    for column in ("target", "hardware", "cpu", "ram", "accelerator", "budgets"):
        table.add_column(column)
    # The built-in files read without pydantic (a tenth of a second of start-up); through the
    # validated models when one of them needs it.
    for row in builtin_rows() or _validated_rows():
        table.add_row(row.name, row.hardware, row.cpu, row.ram, row.accelerator, row.budgets)
    Console().print(table)


def _validated_rows() -> list[TargetRow]:
    from mlfit.catalog.builtin import TargetRow, budget_summary
    from mlfit.catalog.loader import builtin_targets
    from mlfit.catalog.units import format_size

    rows = []
    for target in builtin_targets():
        hw = target.hardware
        budgets = target.profile.budgets
        rows.append(TargetRow(
            name=target.name, hardware=hw.id, cpu=f"{hw.cpu.cores}x {hw.cpu.arch.value}",
            ram=format_size(hw.memory.ram), accelerator=", ".join(a.name for a in hw.accelerators) or "-",
            budgets=budget_summary({p.value: v for p, v in budgets.latency.items()},
                                   budgets.peak_memory.describe() if budgets.peak_memory else None,
                                   budgets.throughput)))
    return rows


@app.command()
def show(name: Annotated[str, typer.Argument(help="Built-in target name or profile YAML path.")],
         hardware: Annotated[bool, typer.Option("--hardware", help="Print the target's hardware file instead of "
                                                "its profile.")] = False) -> None:
    """Print one target as a profile YAML you can copy and edit (units as people write them; it passes
    `mlfit targets validate`), or its hardware with --hardware."""
    import yaml

    from mlfit.catalog.describe import to_yaml_data
    from mlfit.catalog.loader import resolve_target

    target = resolve_target(name)
    if hardware:
        head = f"# hardware of target {target.name} ({target.source})\n"
        sys.stdout.write(head + yaml.safe_dump(to_yaml_data(target.hardware), sort_keys=False, allow_unicode=True))
        return
    data = to_yaml_data(target.profile)
    ref = target.profile.hardware
    if target.source != "built-in" and ref != "host" and ("/" in ref or ref.endswith((".yaml", ".yml"))):
        path = Path(ref)
        data["hardware"] = str(path if path.is_absolute() else (Path(target.source).parent / path).resolve())
    head = f"# target {target.name} ({target.source}) on {target.hardware.id}: {target.hardware.name}\n"
    hardware_yaml = yaml.safe_dump(to_yaml_data(target.hardware), sort_keys=False, allow_unicode=True)
    # The resolved hardware follows as comments, so the output stays a profile `targets validate` accepts.
    tail = (f"\n# hardware {target.hardware.id} (as a file: mlfit targets show {name} --hardware):\n"
            + "".join(f"#   {line}\n" for line in hardware_yaml.splitlines()))
    sys.stdout.write(head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True) + tail)


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Profile or hardware YAML files.")]) -> None:
    """Check user profile or hardware files; exit 0 when all are valid, 2 otherwise."""
    from mlfit.catalog.loader import load_hardware_file, resolve_hardware, resolve_target
    from mlfit.catalog.yamlload import load_yaml
    from mlfit.errors import ConfigError

    failed = 0
    for path in files:
        try:
            located = load_yaml(path)
            data = located.data
            if isinstance(data, dict) and "cpu" in data:
                load_hardware_file(path)
            else:
                target = resolve_target(str(path) if str(path).endswith((".yaml", ".yml")) else f"./{path}")
                resolve_hardware(target.profile.hardware, relative_to=path.parent)
            sys.stdout.write(f"{path}: ok\n")
        except ConfigError as exc:
            failed += 1
            sys.stderr.write(f"mlfit: error: {exc.one_line()}\n")
    raise typer.Exit(ExitCode.USAGE if failed else ExitCode.OK)
