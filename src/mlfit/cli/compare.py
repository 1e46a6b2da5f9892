"""``mlfit compare BASE.json NEW.json`` and the ``--baseline`` support of ``mlfit check``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlfit.errors import ConfigError, ExitCode

MinEffect = Annotated[
    str,
    typer.Option(
        "--min-effect",
        help="Smallest change that counts as a regression: '5%' or 0.05.",
        rich_help_panel="Compare",
    ),
]
RunNoise = Annotated[
    str,
    typer.Option(
        "--run-noise",
        help="Assumed run-to-run spread of latency between two "
        "runs on one machine ('2%'); 0 on a quiet, dedicated machine.",
        rich_help_panel="Compare",
    ),
]


def parse_fraction(flag: str, text: str) -> float:
    """'5%' -> 0.05; '0.05' -> 0.05."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(f"{flag} '{text}': not a fraction", f"for example {flag} 5%") from None
    if value != value or value < 0:
        raise ConfigError(f"{flag} '{text}': must be zero or more", f"for example {flag} 5%")
    return value


def compare_options(
    min_effect: str, run_noise: str, confidence: float = 0.95, method: str = "bootstrap", strict: bool = False
) -> Any:
    from mlfit.compare import CompareOptions, Method

    try:
        chosen = Method(method.lower())
    except ValueError:
        raise ConfigError(f"--method '{method}': unknown", "use bootstrap or mannwhitney") from None
    return CompareOptions(
        min_effect=parse_fraction("--min-effect", min_effect),
        run_noise=parse_fraction("--run-noise", run_noise),
        confidence=confidence,
        method=chosen,
        strict=strict,
    )


def check_host(baseline: Any, path: Path, strict: bool) -> None:
    """Before measuring: under --strict, refuse a baseline from another machine (no wasted run)."""
    from mlfit.measure.host import host_info

    base_fp = next((r.host.fingerprint for r in baseline.results if r.host is not None), None)
    here = host_info().fingerprint
    if strict and base_fp != here:
        raise ConfigError(
            f"baseline '{path}' was measured on another machine (fingerprint {base_fp}, this host "
            f"{here}); refusing under --strict",
            "re-run the baseline here, or drop --strict to compare with a warning",
        )


def baseline_comparison(baseline: Any, report: Any, path: Path | None, options: Any) -> Any:
    """The comparison for ``check --baseline``, or None (with a warning) when no model of the new
    run matches one in the baseline: the reports are still written, the budgets still decide."""
    from mlfit.compare import compare_reports

    if all(r.error is not None for r in report.results):
        return None
    try:
        return compare_reports(baseline, report, str(path), options)
    except ConfigError as exc:
        if options.strict or "nothing to compare" not in exc.message:
            raise
        sys.stderr.write(f"mlfit: warning: {exc.one_line()}\n")
        return None


def print_comparison(comparison: Any, stderr: bool = False) -> None:
    from rich.console import Console

    from mlfit.report.comparison import render_comparison

    Console(stderr=stderr).print(render_comparison(comparison, warnings=False))
    from mlfit.errors import printable

    for warning in comparison.warnings:  # they name models from result files: one printable line each
        sys.stderr.write(f"mlfit: warning: {printable(warning)}\n")


def register(app: typer.Typer) -> None:
    @app.command()
    def compare(
        base: Annotated[Path, typer.Argument(help="Baseline result JSON.", show_default=False)],
        new: Annotated[
            Path, typer.Argument(help="New result JSON of the same model(s).", show_default=False)
        ],
        min_effect: MinEffect = "5%",
        run_noise: RunNoise = "2%",
        confidence: Annotated[
            float, typer.Option("--confidence", min=0.5, max=0.999, help="Confidence level of the intervals.")
        ] = 0.95,
        method: Annotated[
            str,
            typer.Option(
                "--method",
                help="bootstrap (block bootstrap of the raw samples) or "
                "mannwhitney (adds a Mann-Whitney U test).",
            ),
        ] = "bootstrap",
        strict: Annotated[
            bool,
            typer.Option(
                "--strict",
                help="Refuse (exit 2) when the runs come from different machines instead of warning.",
            ),
        ] = False,
        output: Annotated[
            list[str] | None,
            typer.Option(
                "--output",
                "-o",
                help="FORMAT=PATH, repeatable: the "
                "new result with its comparison (json, markdown, junit, "
                "html, text).",
            ),
        ] = None,
    ) -> None:
        """Compare NEW with BASE per metric, with confidence intervals; exit 1 on a regression, else 0.

        A regression is a change beyond --min-effect whose whole confidence interval lies on the worse
        side, judged on the contention-proof cost (uncontended cost per call) against the noise the runs
        measured in themselves; two runs of the same file, inputs and configuration never regress. Runs
        that are not comparable (the same file on other inputs; another runtime, thread count,
        execution provider or batch) exit 2 with the reason. Runs from different machines give a
        warning, or exit 2 under --strict.
        """
        from mlfit.compare import compare_reports, with_comparison
        from mlfit.report.outputs import parse_outputs, write_outputs
        from mlfit.resultfile import load_report

        options = compare_options(min_effect, run_noise, confidence, method, strict)
        outputs = parse_outputs(output, None, [base, new])
        base_report, new_report = load_report(base), load_report(new)
        comparison = compare_reports(base_report, new_report, str(base), options)
        print_comparison(comparison, stderr=any(path == "-" for _, path in outputs))
        write_outputs(with_comparison(new_report, comparison), outputs)
        raise typer.Exit(int(ExitCode.BUDGET_FAILED if comparison.regressed else ExitCode.OK))
