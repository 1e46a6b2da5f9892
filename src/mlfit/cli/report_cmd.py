"""``mlfit report``: render a stored result again, in any format, without measuring."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlfit.errors import ExitCode


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        result: Annotated[
            Path,
            typer.Argument(
                help="A result JSON written by `mlfit check --json` or `--output json=...`.",
                show_default=False,
            ),
        ],
        output: Annotated[
            list[str] | None,
            typer.Option(
                "--output",
                "-o",
                help="FORMAT=PATH, repeatable: json, markdown, junit, html, text ('-' for stdout).",
            ),
        ] = None,
        verdict_exit: Annotated[
            bool,
            typer.Option(
                "--exit-code/--no-exit-code",
                help="Exit with the stored verdict's code (1 on FAIL or regression) instead of 0.",
            ),
        ] = False,
    ) -> None:
        """Render RESULT.json again (terminal, or files with --output) without measuring anything."""
        from rich.console import Console

        from mlfit.cli.check import exit_code_for
        from mlfit.report.comparison import render_comparison
        from mlfit.report.outputs import parse_outputs, write_outputs
        from mlfit.report.terminal import render_terminal
        from mlfit.resultfile import load_report

        outputs = parse_outputs(output, None, [result])
        stored = load_report(result)
        console = Console(stderr=any(path == "-" for _, path in outputs))  # stdout holds a report then
        if any(r.error is None for r in stored.results):
            console.print(render_terminal(stored))
        if stored.comparison is not None:
            console.print(render_comparison(stored.comparison))
        write_outputs(stored, outputs)
        code = 0
        if verdict_exit:  # the code `mlfit check` gave: model errors first, then failures or regressions
            codes = [exit_code_for(r, strict=False) for r in stored.results]
            if stored.comparison is not None and stored.comparison.regressed:
                codes.append(int(ExitCode.BUDGET_FAILED))
            code = max(codes, key=[0, int(ExitCode.INCONCLUSIVE), 1, int(ExitCode.MODEL)].index, default=0)
        raise typer.Exit(code)
