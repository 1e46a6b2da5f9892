"""``mlfit check``, ``mlfit profile``, ``mlfit inspect`` and ``mlfit schema``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from mlfit.cli.common import Batch, Data, Dims, Progress, Ranges, Seed, Shapes, Values, input_spec
from mlfit.cli.compare import MinEffect, RunNoise
from mlfit.errors import ExitCode

Json = Annotated[str | None, typer.Option("--json", help="Write the full result as JSON to PATH ('-' for stdout).",
                                          rich_help_panel="Output")]
Outputs = Annotated[list[str] | None, typer.Option("--output", "-o", help="FORMAT=PATH, repeatable "
                                                   "(json, markdown, junit, html, text).", rich_help_panel="Output")]
Baseline = Annotated[Path | None, typer.Option("--baseline", help="Compare with this earlier result JSON; exit 1 on "
                                               "a regression (see `mlfit compare`).", rich_help_panel="Output")]
Threads = Annotated[int | None, typer.Option("--threads", min=1, help="Intra-op threads (default: the targets' "
                                             "threads, capped at the cores this process may use).",
                                             rich_help_panel="Measurement")]
MinTime = Annotated[float, typer.Option("--min-time", min=0.0, max=3600.0, help="Measure at least this many seconds.",
                                        rich_help_panel="Measurement")]
MaxTime = Annotated[float, typer.Option("--max-time", min=0.1, max=3600.0, help="Stop the timed loop after this "
                                        "many seconds even if a percentile still lacks samples.",
                                        rich_help_panel="Measurement")]
Warmup = Annotated[int, typer.Option("--warmup", min=0, max=100_000, help="Warm-up iterations before timing.",
                                     rich_help_panel="Measurement")]
Timeout = Annotated[float | None, typer.Option("--timeout", min=1.0, max=86_400.0, help="Bound for each phase "
                                               "(load, first inference, warm-up, measure) in seconds; default "
                                               "120 s for one inference, 300 s for loading.",
                                               rich_help_panel="Measurement")]
Runtime_ = Annotated[str | None, typer.Option("--runtime", help="Override the runtime chosen from the file's "
                                              "content: onnxruntime, tensorflow, tflite, sklearn.",
                                              rich_help_panel="Model")]
TrustModel = Annotated[bool, typer.Option("--trust-model", help="Load a model that can run code (pickle, "
                                          "Lambda layers, file ops) anyway, inside the worker only.",
                                          rich_help_panel="Model")]
TrustType = Annotated[list[str] | None, typer.Option("--trust-type", help="Trust one type a .skops file needs "
                                                     "(repeatable; each must be named).", rich_help_panel="Model")]
Signature = Annotated[str, typer.Option("--signature", help="SavedModel signature to run.",
                                        rich_help_panel="Model")]
Method = Annotated[str, typer.Option("--method", help="scikit-learn method: predict, predict_proba or "
                                     "transform.", rich_help_panel="Model")]
Convert = Annotated[bool, typer.Option("--convert", help="When a target lacks the model's runtime, measure the "
                                       "model converted to one it has (skl2onnx, tf2onnx, TFLite converter).",
                                       rich_help_panel="Model")]
_MEMORY_HELP = ("Stop the measurement worker when its resident memory exceeds SIZE (e.g. 2GiB), or 'target' "
                "for the smallest target's available RAM; default 90% of this host's free memory.")
MemoryLimit = Annotated[str | None, typer.Option("--memory-limit", help=_MEMORY_HELP,
                                                 rich_help_panel="Measurement")]
_CUSTOM_OPS_HELP = ("Shared library implementing the model's custom ONNX operators (repeatable); "
                    "never searched for automatically.")
CustomOps = Annotated[list[str] | None, typer.Option("--custom-op-library", help=_CUSTOM_OPS_HELP,
                                                     rich_help_panel="Model")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]
Strict = Annotated[bool, typer.Option("--strict", help="Exit 4 when any verdict is INCONCLUSIVE.")]
# Load scenarios and scale-out (issue 8): see docs/scale.md.
_LOAD, _SCALE = "Load", "Scale"
Scenario_ = Annotated[str, typer.Option(
    "--scenario", rich_help_panel=_LOAD,
    help="single-stream (one request at a time), server (Poisson arrivals at --qps from concurrent callers; "
         "latency from each request's scheduled arrival) or offline (maximum batched throughput).")]
Qps = Annotated[list[float] | None, typer.Option(
    "--qps", rich_help_panel=_LOAD, help="Request rate per second for the server scenario (repeatable).")]
FindMaxQps = Annotated[bool, typer.Option(
    "--find-max-qps", rich_help_panel=_LOAD,
    help="Search for the highest request rate at which the target's latency percentile budget still holds; "
         "reports the rate with its bounds.")]
BatchSizes = Annotated[str | None, typer.Option(
    "--batch-sizes", rich_help_panel=_LOAD,
    help="Sweep batch sizes, e.g. 1,2,4,8 (where the batch dim is free): latency and throughput per size.")]
Callers = Annotated[int, typer.Option(
    "--callers", min=1, max=256, rich_help_panel=_LOAD,
    help="Concurrent callers (threads) in the server and offline scenarios.")]
Cluster = Annotated[str | None, typer.Option(
    "--cluster", rich_help_panel=_SCALE,
    help="Run the measurements on a Dask cluster: tcp://SCHEDULER:PORT. Workers started with `mlfit worker "
         "SCHEDULER --target NAME` measure on the target itself.")]
Budget = Annotated[list[str] | None, typer.Option(
    "--budget", rich_help_panel="Targets",
    help="Add or override a budget of every target, METRIC=VALUE (repeatable): latency.p95=80ms, "
         "cold_start=2s, peak_memory=400MiB, model_size=50MB, throughput=10/s.")]
Container_ = Annotated[str | None, typer.Option(
    "--container", rich_help_panel="Targets",
    help="With a Kubernetes manifest or Compose file as --target: the container (or service) to check.")]
SharedPath = Annotated[bool, typer.Option(
    "--shared-path", rich_help_panel=_SCALE,
    help="With --cluster: workers read the model files at the same paths (shared filesystem) instead of "
         "receiving their bytes.")]
_SUGGEST = "Suggest"
Suggest_ = Annotated[str | None, typer.Option(
    "--suggest", rich_help_panel=_SUGGEST, show_default=False, metavar="[=all]",
    help="Measure variants that would fit (threads, batch, int8, fp16, TFLite build) for each target that FAILs "
         "or is INCONCLUSIVE; --suggest=all for every target. Verdicts and the exit code stay the original's.")]
SuggestTime = Annotated[float, typer.Option(
    "--suggest-time", min=1.0, max=86_400.0, rich_help_panel=_SUGGEST,
    help="Time budget of the --suggest search in seconds; variants are tried cheapest first.")]
MinAgreement = Annotated[float, typer.Option(
    "--min-agreement", min=0.0, max=1.0, rich_help_panel=_SUGGEST,
    help="A variant is recommended only when its outputs agree this well with the original's: top-1 agreement "
         "for classifier outputs, else cosine similarity.")]
WriteVariants = Annotated[Path | None, typer.Option(
    "--write-variants", rich_help_panel=_SUGGEST,
    help="With --suggest: save the passing variants' files (and each one's recipe) in this folder.")]
WhatIf_ = Annotated[list[str] | None, typer.Option(
    "--what-if", rich_help_panel=_SUGGEST, show_default=False, metavar="dim=NAME:V1,V2",
    help="With --suggest: also try these input sizes (a symbolic dim of the model), e.g. "
         "--what-if dim=height:256,224. Repeatable.")]
TlsCa = Annotated[Path | None, typer.Option(
    "--tls-ca-file", rich_help_panel=_SCALE, help="With --cluster tls://...: the CA certificate (PEM) that signs "
    "every cluster member (mutual TLS, docs/scale.md).")]
TlsCert = Annotated[Path | None, typer.Option(
    "--tls-cert", rich_help_panel=_SCALE, help="With --cluster tls://...: this client's certificate (PEM).")]
TruthStore = Annotated[Path | None, typer.Option(
    "--truth", rich_help_panel="Targets", help="The device truth store whose adapted fits projections use "
    "(default: $MLFIT_TRUTH, else the user's cache folder; see `mlfit truth`).")]
Learn = Annotated[bool, typer.Option(
    "--learn", rich_help_panel=_SCALE, help="With --cluster: add the results measured on targets by verified "
    "workers to the truth store (`mlfit truth fit` then learns from them).")]
TlsKey = Annotated[Path | None, typer.Option(
    "--tls-key", rich_help_panel=_SCALE, help="With --cluster tls://...: this client's private key (PEM).")]
MlflowLog = Annotated[bool, typer.Option(
    "--mlflow-log", rich_help_panel="Output", help="Log each model's verdict (tags on the model version, or on the "
    "run of a runs:/ URI), key figures (metrics) and reports (artifacts) to MLflow; docs/integrations.md.")]


def _cluster_spec(address: str | None, ca_file: Path | None, cert: Path | None, key: Path | None) -> Any:
    """--cluster and the --tls-* files, checked before anything is measured."""
    from mlfit.errors import ConfigError

    if address is None:
        if ca_file or cert or key:
            raise ConfigError("--tls-ca-file, --tls-cert and --tls-key only apply with --cluster",
                              "add --cluster tls://SCHEDULER:PORT")
        return None
    from mlfit.cluster import ClusterSpec
    from mlfit.cluster.net import check_scheme, parse_address, tls_from_flags

    tls = tls_from_flags(ca_file, cert, key)
    check_scheme(parse_address(address), tls)
    return ClusterSpec(address, tls)


def _runtime(name: str | None) -> Any:
    if name is None:
        return None
    from mlfit.catalog.schema import Runtime
    from mlfit.errors import ConfigError

    try:
        return Runtime(name)
    except ValueError:
        raise ConfigError(f"unknown runtime '{name}'", f"use one of: {', '.join(r.value for r in Runtime)}") from None


def _method(name: str) -> str:
    from mlfit.errors import ConfigError

    if name not in ("predict", "predict_proba", "transform"):
        raise ConfigError(f"--method '{name}': expected predict, predict_proba or transform")
    return name


def exit_code_for(result: Any, strict: bool) -> int:
    """The result's own exit code (RunResult.exit_code, which the API's ``passed`` follows), with a
    warning when INCONCLUSIVE verdicts pass without --strict."""
    from mlfit.result import Verdict

    code = int(result.exit_code(strict))
    if code == ExitCode.OK and result.verdict is Verdict.INCONCLUSIVE:
        sys.stderr.write("mlfit: warning: INCONCLUSIVE (reasons above) exits 0; --strict makes it exit 4\n")
    return code


def _progress_line(event: dict[str, object]) -> None:
    """Progress of a many-model run: one line per model started or finished."""
    from mlfit.errors import printable

    text = event.get("text")
    if event.get("event") == "model" and isinstance(text, str):
        sys.stderr.write(printable(text) + "\n")
        sys.stderr.flush()


def _error_line(text: str, prefix: str = "mlfit: error: ") -> None:
    """One printable line on stderr: a name or message from a file cannot add a forged line."""
    from mlfit.errors import printable

    sys.stderr.write(prefix + printable(text) + "\n")


def suggest_options(mode: str | None, seconds: float, min_agreement: float, write_variants: Path | None,
                    what_if: list[str] | None, cluster: bool) -> Any:
    """--suggest[=all], --suggest-time, --min-agreement, --write-variants and --what-if, checked
    before measuring."""
    from mlfit.errors import ConfigError

    if mode is None:
        for flag, given in (("--write-variants", write_variants is not None), ("--what-if", bool(what_if))):
            if given:
                raise ConfigError(f"{flag} only applies with --suggest", "add --suggest (or --suggest=all)")
        return None
    if mode not in ("failing", "all"):
        raise ConfigError(f"--suggest={mode}: expected --suggest (targets that do not pass) or --suggest=all")
    if cluster:  # the variants are built and measured here; a cluster worker measures on the target itself
        raise ConfigError("--suggest measures its variants on this host and cannot send them to cluster workers",
                          "run `mlfit check MODEL --target T --suggest` without --cluster (projected to T)")
    from mlfit.advise.variants import parse_what_if  # only with --suggest: not before every handoff

    if write_variants is not None and write_variants.exists() and not write_variants.is_dir():
        raise ConfigError(f"--write-variants {write_variants}: not a folder", "give a folder (it is created)")
    from mlfit.advise import SuggestOptions

    return SuggestOptions(every_target=mode == "all", time_s=seconds, min_agreement=min_agreement,
                          write_variants=write_variants, what_if=parse_what_if(what_if))


def bare_suggest(argv: list[str]) -> list[str]:
    """A bare ``--suggest`` is ``--suggest=failing`` (the value is optional; click's options take
    one or none only through this)."""
    return ["--suggest=failing" if arg == "--suggest" else arg for arg in argv]


def _measure(model: Path, targets: list[Any], spec: Any, options: Any, quiet: bool, suggest: Any = None) -> Any:
    """Identify and measure one model; a model that cannot be loaded becomes a result with an error,
    so the report still names it."""
    from mlfit.api import error_result, identify, run_model
    from mlfit.errors import ModelError

    try:
        ref = identify(model, options.runtime)
    except ModelError as exc:
        return error_result(model, exc, kind="load")
    from mlfit.errors import printable
    from mlfit.multi import interrupted_result

    if suggest is not None:
        from mlfit.advise import check_what_if

        check_what_if(ref, options, suggest)  # a --what-if dim the model lacks: exit 2 before measuring
    try:
        with Progress(printable(Path(model).name), quiet) as progress:
            result = run_model(ref, targets, spec, options, progress)
            if suggest is not None:
                from mlfit.advise import suggest as suggest_variants

                result = suggest_variants(ref, targets, spec, options, result, suggest, progress)
            return result
    except KeyboardInterrupt:  # outside the worker (copying, analysing): still a report, marked incomplete
        return interrupted_result(model)


def _inputs(models: list[Path], spec: Any, targets: list[str], baseline: Path | None,
            libraries: list[str] | None, resolved: Sequence[Any] = ()) -> list[str | Path | None]:
    """Every file the command reads: a report must never be written over one of them (an ONNX
    model's external-data files, and every file a resolved target was read from: profile,
    hardware, manifest or Compose file)."""
    from mlfit.formats.registry import by_suffix, get

    claimed = [(m, by_suffix(m.suffix)) for m in models if m.is_file()]
    data = [f for m, kind in claimed if kind is not None for f in get(kind).external_files(m)]
    read = [f for t in resolved for f in t.files]
    return [*models, *data, *(t for t in targets if t.endswith((".yaml", ".yml"))), *read, baseline,
            spec.data_file, *spec.data_arrays.values(), *(libraries or [])]


def _with_regression(code: int, comparison: Any) -> int:
    """A regression against --baseline fails the run (exit 1) unless something worse already did."""
    if comparison is not None and comparison.regressed and code in (ExitCode.OK, ExitCode.INCONCLUSIVE):
        return int(ExitCode.BUDGET_FAILED)
    return code


def _render_report(report: Any, outputs: list[Any], comparison: Any = None) -> None:
    """The one rendering path, for one model or many: terminal, the --baseline comparison, the
    output files, then one error line per model that could not be measured."""
    from rich.console import Console

    from mlfit.report.outputs import write_outputs
    from mlfit.report.terminal import render_terminal

    to_stdout = any(path == "-" for _, path in outputs)
    single = len(report.results) == 1
    if not (single and report.results[0].error is not None):  # one failed model: its error line says it all
        Console(stderr=to_stdout).print(render_terminal(report))
    if comparison is not None:
        from mlfit.cli.compare import print_comparison
        from mlfit.compare import with_comparison

        print_comparison(comparison, stderr=to_stdout)
        report = with_comparison(report, comparison)
    write_outputs(report, outputs)
    for result in report.results:
        if result.error is not None:
            err = result.error
            where = "" if single else f"{result.model.path}: "
            _error_line(f"{where}{err.message}" + (f" ({err.hint})" if err.hint else ""))
    files = [path for _, path in outputs if path != "-"]
    if files and not report.complete:
        _error_line(f"partial report, marked incomplete, written to {', '.join(files)}", prefix="mlfit: ")


def _finish(report: Any, outputs: list[Any], strict: bool, base_report: Any = None, baseline: Any = None,
            compare_opts: Any = None, mlflow_log: bool = False) -> None:
    """Compare with --baseline (when given and something was measured), render, log to MLflow
    (--mlflow-log), and exit with the report's code: the same for one model and many."""
    comparison = None
    if base_report is not None and any(r.error is None for r in report.results):
        from mlfit.cli.compare import baseline_comparison

        comparison = baseline_comparison(base_report, report, baseline, compare_opts)
    _render_report(report, outputs, comparison)
    code = _with_regression(exit_code_for(report, strict), comparison)
    if mlflow_log:  # after the reports are written: a failed upload loses no measurement, but exits 2
        from mlfit.errors import MlfitError
        from mlfit.integrations.mlflow import log_result

        try:
            log_result(report, strict=strict)
        except MlfitError as exc:
            _error_line(exc.one_line())
            code = max(code, int(exc.exit_code))
    raise typer.Exit(code)


def _learn(report: Any, truth: Path | None) -> None:
    """--learn: the on-target results go into the truth store (before rendering: a store that cannot
    be written is said with the report still to come)."""
    from mlfit.truth.rows import learned_rows, merge
    from mlfit.truth.store import read_store, store_path, write_store

    path = store_path(truth)
    new = learned_rows(report)  # by the result's own hash: the --json file is written after this
    store, _ = read_store(path)
    rows, _notes = merge(store.rows, new)
    if len(rows) > len(store.rows):
        write_store(path, store.model_copy(update={"rows": rows}))
    sys.stderr.write(f"mlfit: learned {len(rows) - len(store.rows)} rows measured on targets into {path} "
                     "(`mlfit truth fit` refits from them)\n")


def register(app: typer.Typer) -> None:
    @app.command()
    def check(
        models: Annotated[list[Path], typer.Argument(
            help="Model files, SavedModel directories, folders of models (every recognised model file in "
                 "them), or MLflow URIs: models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN_ID/PATH.",
            show_default=False, metavar="MODEL...")],
        target: Annotated[list[str], typer.Option("--target", "-t", help="Built-in target name, profile YAML "
                                                  "path, Kubernetes manifest or Compose file (measured under its "
                                                  "container limits), or 'all' (repeatable). See `mlfit targets`.",
                                                  rich_help_panel="Targets")],
        dim: Dims = None, shape: Shapes = None, value: Values = None, range_: Ranges = None, data: Data = None,
        seed: Seed = 0, batch: Batch = None, json_path: Json = None, output: Outputs = None, threads: Threads = None,
        min_time: MinTime = 1.0, max_time: MaxTime = 30.0, warmup: Warmup = 10, timeout: Timeout = None,
        runtime: Runtime_ = None, strict: Strict = False, quiet: Quiet = False,
        trust_model: TrustModel = False, trust_type: TrustType = None, signature: Signature = "serving_default",
        method: Method = "predict", convert: Convert = False,
        scenario: Scenario_ = "single-stream", qps: Qps = None, find_max_qps: FindMaxQps = False,
        batch_sizes: BatchSizes = None, callers: Callers = 4, cluster: Cluster = None,
        shared_path: SharedPath = False, baseline: Baseline = None,
        min_effect: MinEffect = "5%", run_noise: RunNoise = "2%",
        memory_limit: MemoryLimit = None, custom_op_library: CustomOps = None,
        budget: Budget = None, container: Container_ = None,
        tls_ca_file: TlsCa = None, tls_cert: TlsCert = None, tls_key: TlsKey = None,
        truth: TruthStore = None, learn: Learn = False,
        suggest: Suggest_ = None, suggest_time: SuggestTime = 60.0, min_agreement: MinAgreement = 0.99,
        write_variants: WriteVariants = None, what_if: WhatIf_ = None, mlflow_log: MlflowLog = False,
    ) -> None:
        """Measure each MODEL once and check it against every budget of each --target.

        Exit codes: 0 all budgets pass; 1 a budget failed (or a regression against --baseline);
        2 usage or configuration error; 3 the model could not be loaded or measured;
        4 inconclusive under --strict; 130 interrupted.

        Many models (or a folder) give one combined report; locally they are measured one at
        a time. See docs/scale.md for load scenarios and --cluster.
        """
        from mlfit.api import MeasureOptions, check_many, resolve_targets
        from mlfit.cli.common import parse_memory_limit
        from mlfit.formats.registry import folder_format
        from mlfit.measure.loadplan import parse_batch_sizes, plan_load
        from mlfit.report.outputs import parse_outputs

        if mlflow_log:  # refused before measuring, not after
            from mlfit.integrations.mlflow import ensure_available

            ensure_available("--mlflow-log")
        targets = resolve_targets(target, container=container, budgets=budget or ())
        spec = input_spec(dim, shape, value, range_, data, seed)
        outputs = parse_outputs(output, json_path, _inputs(models, spec, target, baseline, custom_op_library,
                                                           targets))
        cluster_spec = _cluster_spec(cluster, tls_ca_file, tls_cert, tls_key)
        if learn and cluster is None:
            from mlfit.errors import ConfigError

            raise ConfigError("--learn adds results measured on targets by cluster workers",
                              "add --cluster SCHEDULER, or add results measured by hand with `mlfit truth add`")
        import os

        if truth is not None or learn or os.environ.get("MLFIT_TRUTH"):
            from mlfit.truth.fit import active_fits  # a store or fit file that cannot be read: refused now,
            from mlfit.truth.store import read_store, store_path  # not after measuring

            read_store(store_path(truth))
            active_fits(store_path(truth))
        base_report = compare_opts = None
        if baseline is not None:  # read and vet it before measuring, not after
            from mlfit.cli.compare import check_host, compare_options
            from mlfit.resultfile import load_report

            compare_opts = compare_options(min_effect, run_noise, strict=strict)
            base_report = load_report(baseline)
            check_host(base_report, baseline, strict)
        options = MeasureOptions(threads=threads, warmup=warmup, min_time=min_time, max_time=max_time,
                                 timeout=timeout, runtime=_runtime(runtime), trust_model=trust_model,
                                 trust_types=tuple(trust_type or ()), signature=signature,
                                 method=_method(method), convert=convert, scenario=scenario, batch_size=batch,
                                 qps=tuple(qps or ()), find_max_qps=find_max_qps,
                                 batch_sizes=parse_batch_sizes(batch_sizes), callers=callers,
                                 memory_limit=parse_memory_limit(memory_limit, targets),
                                 custom_op_libraries=tuple(custom_op_library or ()),
                                 truth=str(truth) if truth is not None else None)
        plan_load(targets, options.scenario, options.qps, options.find_max_qps, options.batch_sizes,
                  options.callers)  # refuse bad load flags before measuring anything
        from mlfit.integrations.mlflow import local_models

        with local_models(models) as local:  # MLflow URIs downloaded for the run (docs/integrations.md)
            models = local.paths
            many = bool(cluster or shared_path or len(models) > 1
                        or any(m.is_dir() and folder_format(m) is None for m in models))
            advice = suggest_options(suggest, suggest_time, min_agreement, write_variants, what_if,
                                     bool(cluster or shared_path))
            if many:
                report = check_many(models, targets, spec, options, None if quiet else _progress_line,
                                    cluster=cluster_spec, shared_path=shared_path, suggest=advice)
            else:
                from mlfit.api import single_report

                report = single_report(_measure(models[0], targets, spec, options, quiet, advice))
            report = local.annotate(report)
        if learn:
            _learn(report, truth)
        _finish(report, outputs, strict, base_report, baseline, compare_opts, mlflow_log)

    @app.command()
    def profile(
        model: Annotated[Path, typer.Argument(help="Model file or SavedModel directory.", show_default=False)],
        dim: Dims = None, shape: Shapes = None, value: Values = None, range_: Ranges = None, data: Data = None,
        seed: Seed = 0, batch: Batch = None, json_path: Json = None, output: Outputs = None, threads: Threads = None,
        min_time: MinTime = 1.0, max_time: MaxTime = 30.0, warmup: Warmup = 10, timeout: Timeout = None,
        runtime: Runtime_ = None, quiet: Quiet = False,
        trust_model: TrustModel = False, trust_type: TrustType = None, signature: Signature = "serving_default",
        method: Method = "predict", convert: Convert = False,
        memory_limit: MemoryLimit = None, custom_op_library: CustomOps = None,
    ) -> None:
        """Measure MODEL on this host without checking budgets (latency, memory, cold start, throughput)."""
        from mlfit.api import MeasureOptions
        from mlfit.cli.common import parse_memory_limit
        from mlfit.report.outputs import parse_outputs

        spec = input_spec(dim, shape, value, range_, data, seed)
        outputs = parse_outputs(output, json_path, _inputs([model], spec, [], None, custom_op_library))
        options = MeasureOptions(threads=threads, warmup=warmup, min_time=min_time, max_time=max_time,
                                 timeout=timeout, runtime=_runtime(runtime), trust_model=trust_model,
                                 trust_types=tuple(trust_type or ()), signature=signature,
                                 method=_method(method), convert=convert, batch_size=batch,
                                 memory_limit=parse_memory_limit(memory_limit, []),
                                 custom_op_libraries=tuple(custom_op_library or ()))
        from mlfit.api import single_report

        _finish(single_report(_measure(model, [], spec, options, quiet)), outputs, strict=False)

    @app.command()
    def inspect(
        model: Annotated[Path, typer.Argument(help="Model file.", show_default=False)],
        json_out: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
        dim: Dims = None, shape: Shapes = None, value: Values = None,
        signature: Annotated[str, typer.Option("--signature", help="SavedModel signature to show.")] =
        "serving_default",
    ) -> None:
        """Show a model's inputs, outputs, op histogram, parameters and size, without running it.

        Every format: ONNX and TFLite with FLOPs and activations; SavedModel (the ops its signature
        runs, the variables' parameters); Keras (the config's layers); .skops and pickles list the
        types they hold, read by mlfit's scans without unpickling.

        FLOPs and activation sizes need concrete shapes: give the symbolic dims (--dim), whole input
        shapes (--shape) or constant input values (--value); dims left open are taken as 1 and said."""
        from rich.console import Console

        from mlfit.api import inspect as inspect_model
        from mlfit.report.inspect import render_inspect

        spec = input_spec(dim, shape, value, None, None, 0)
        facts = inspect_model(model, inputs=spec, signature=signature)
        if json_out:
            sys.stdout.write(json.dumps(facts, indent=2) + "\n")
        else:
            Console().print(render_inspect(facts))

    @app.command()
    def schema(
        kind: Annotated[str, typer.Option("--kind", help="hardware, profile, both, or report (the result JSON "
                                          "format).")] = "both",
    ) -> None:
        """Print the JSON Schema of hardware and profile files (for editor validation), or of result files."""
        from mlfit.catalog.schema import Hardware, Profile
        from mlfit.errors import ConfigError
        from mlfit.result import Report

        schemas = {"hardware": Hardware.model_json_schema(), "profile": Profile.model_json_schema(),
                   "report": Report.model_json_schema()}
        if kind == "both":  # the two catalog file kinds, as before `report` existed
            out: Any = {k: schemas[k] for k in ("hardware", "profile")}
        elif kind in schemas:
            out = schemas[kind]
        else:
            raise ConfigError(f"--kind '{kind}': expected hardware, profile, both or report")
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
