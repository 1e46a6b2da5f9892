"""Models from MLflow: ``mlfit check models:/NAME/VERSION`` (or ``models:/NAME@ALIAS``,
``runs:/RUN_ID/PATH``), and results logged back (:func:`log_result`, ``--mlflow-log``).

Loading keeps mlfit's safety rules. To read a model, MLflow is used for two things only: its client resolves the
URI (an alias to its version first, so what is downloaded is what is recorded) and downloads the
artifact into this run's private scratch folder (:mod:`mlfit.scratch`). The ``MLmodel`` file is
read with mlfit's bounded safe YAML loader, never with MLflow's; its flavour names the model file,
which then goes through the same pipeline as any file: content sniffing, the safety scans (a
pickled scikit-learn flavour is refused without ``--trust-model``), loading only in the worker.
No MLflow loader (``mlflow.pyfunc.load_model`` and the flavours' ``load_model``) is ever called.

MLflow finds its server as usual: ``MLFLOW_TRACKING_URI`` and ``MLFLOW_REGISTRY_URI``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlfit.errors import ConfigError, ModelError, printable
from mlfit.integrations import is_model_uri
from mlfit.result import ModelSource, Report, RunResult

# Flavours mlfit measures, in the order one is picked when an MLmodel lists several.
SUPPORTED_FLAVOURS = ("onnx", "keras", "tensorflow", "sklearn")
# Every MLflow model also lists python_function (how MLflow itself would serve it): not a format.
_GENERIC_FLAVOURS = frozenset({"python_function"})
_URI_FORMS = "models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH"


@dataclass(frozen=True)
class ModelUri:
    """A parsed ``models:/`` or ``runs:/`` URI."""

    text: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    path: str = ""

    @property
    def registered(self) -> bool:
        return self.name is not None


def parse_uri(text: str) -> ModelUri:
    """``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/NAME/latest`` or
    ``runs:/RUN_ID/PATH``; anything else is a ConfigError naming the forms."""
    if text.startswith("runs:/"):
        run_id, _, path = text.removeprefix("runs:/").lstrip("/").partition("/")
        if not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", run_id):
            raise ConfigError(f"'{text}': expected runs:/RUN_ID/PATH", f"give one of {_URI_FORMS}")
        return ModelUri(text, run_id=run_id, path=path.strip("/"))
    rest = text.removeprefix("models:/").lstrip("/")
    if "@" in rest and "/" not in rest:
        name, _, alias = rest.partition("@")
        if name and alias:
            return ModelUri(text, name=name, alias=alias)
    name, _, version = rest.rpartition("/")
    if name and (version.isdigit() or version == "latest"):
        return ModelUri(text, name=name, version=version)
    hint = (f"give one of {_URI_FORMS} (MLflow's model stages are deprecated: use an alias)" if name and version
            else f"give one of {_URI_FORMS}")
    raise ConfigError(f"'{text}': not a registered model version", hint)


def _extra_hint() -> str:
    from mlfit.install import install_hint

    return install_hint("mlflow")  # this checkout or git URL: the name mlfit on PyPI is not this project


def require_mlflow(what: str) -> Any:
    """The ``mlflow`` package, or the one-line error naming the extra (``what`` needs it)."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError(f"{what} needs MLflow, which is not installed", _extra_hint()) from None
    return mlflow


def ensure_available(what: str) -> None:
    """Refuse at once, before anything is measured, when MLflow is not installed (no import)."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError(f"{what} needs MLflow, which is not installed", _extra_hint())


def redact(uri: str) -> str:
    """A tracking or registry URI without credentials (user:password@, a query that may hold a
    token), as it may be recorded in a report that leaves this machine."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "(unparsable URI)"
    if "@" not in parts.netloc and not parts.query:
        return uri  # sqlite:////abs/path keeps its four slashes
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _mlflow_error(uri: ModelUri, registry: str, exc: Exception) -> ConfigError:
    """MLflow's exception as one line: a missing model, version, alias or run names what to check."""
    code = str(getattr(exc, "error_code", ""))
    first = (str(getattr(exc, "message", "") or exc).strip().splitlines() or [type(exc).__name__])[0]
    if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE") or "not found" in first.lower():
        what = "run in the MLflow tracking store" if uri.run_id else "registered model version in the MLflow registry"
        return ConfigError(f"{uri.text}: no such {what} {registry} ({first})",
                           "check the name, version or alias (or the run id), and MLFLOW_TRACKING_URI / "
                           "MLFLOW_REGISTRY_URI")
    return ConfigError(f"{uri.text}: MLflow could not resolve it from {registry} ({first})",
                       "check MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI and that the server is reachable")


@contextlib.contextmanager
def _quiet_download() -> Iterator[None]:
    """MLflow draws a progress bar on stderr while downloading; mlfit prints its own progress."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _resolve_version(mlflow: Any, uri: ModelUri, registry: str) -> tuple[str, str | None]:
    """(version, run_id) of a registered model URI: an alias or ``latest`` resolved first, so the
    version downloaded is the one recorded even if the alias moves meanwhile."""
    client = mlflow.MlflowClient()  # MLFLOW_REGISTRY_URI, else the tracking URI, as MLflow decides
    try:
        if uri.alias is not None:
            found = client.get_model_version_by_alias(uri.name, uri.alias)
        elif uri.version == "latest":
            versions = client.search_model_versions(f"name = '{_quoted(uri.name or '')}'")
            if not versions:
                raise ConfigError(f"{uri.text}: the registered model '{uri.name}' has no versions in {registry}",
                                  "register a version first")
            found = max(versions, key=lambda v: int(v.version))
        else:
            found = client.get_model_version(uri.name, uri.version)
    except ConfigError:
        raise
    except Exception as exc:  # MlflowException and the REST client's errors: one line, never a traceback
        raise _mlflow_error(uri, registry, exc) from None
    return str(found.version), (found.run_id or None)


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")


def _download(mlflow: Any, uri: ModelUri, artifact: str, dest: Path, registry: str) -> Path:
    try:
        with _quiet_download():
            local = mlflow.artifacts.download_artifacts(artifact_uri=artifact, dst_path=str(dest))
    except OSError as exc:
        from mlfit.scratch import host_state_error

        raise host_state_error(exc) or ConfigError(f"{uri.text}: download failed ({exc})") from None
    except Exception as exc:
        raise _mlflow_error(uri, registry, exc) from None
    return Path(local)


def _inside(root: Path, relative: object, uri: str, flavour: str) -> Path:
    """``root/relative`` for a path an MLmodel file names: a relative path that stays inside the
    downloaded folder (links resolved), or a ModelError."""
    if not isinstance(relative, str) or not relative or Path(relative).is_absolute():
        raise ModelError(f"{uri}: the MLmodel file's {flavour} flavour names no model path ({relative!r})",
                         "log the model with MLflow's own log_model")
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ModelError(f"{uri}: the MLmodel file's {flavour} flavour names '{relative}', outside the model "
                         "folder; refused", "an MLflow model keeps its files inside its folder")
    if not target.exists():
        raise ModelError(f"{uri}: the MLmodel file's {flavour} flavour names '{relative}', which the "
                         "downloaded model does not contain", "log the model again with MLflow's log_model")
    return target


def _keras_file(root: Path, conf: Mapping[str, Any], uri: str, flavour: str) -> Path:
    """The model in a keras flavour's (or a Keras tensorflow flavour's) data folder:
    data/model.keras, data/model.h5, or data/model as a SavedModel folder."""
    data = _inside(root, conf.get("data", "data"), uri, flavour)
    if data.is_file():
        return data
    for name in ("model.keras", "model.h5", "model"):
        if (data / name).exists():
            return _inside(root, str((data / name).relative_to(root.resolve())), uri, flavour)
    raise ModelError(f"{uri}: the {flavour} flavour's folder '{data.name}' holds no model.keras, model.h5 or "
                     "SavedModel 'model'", "log the model again with MLflow's log_model")


def _flavour_file(root: Path, flavour: str, conf: Mapping[str, Any], uri: str) -> Path:
    """Where a supported flavour keeps its model, as MLflow's own flavours write it."""
    if flavour == "onnx":
        return _inside(root, conf.get("data"), uri, flavour)
    if flavour == "sklearn":  # model.skops (MLflow's default), or model.pkl (pickle, cloudpickle)
        return _inside(root, conf.get("pickled_model"), uri, flavour)
    if flavour == "tensorflow" and conf.get("model_type") in ("tf2-module", "tf1-estimator"):
        return _inside(root, conf.get("saved_model_dir"), uri, flavour)
    return _keras_file(root, conf, uri, flavour)


def read_mlmodel(folder: Path, uri: str) -> tuple[Path, str]:
    """The model file (or SavedModel folder) an MLflow model folder holds, and its flavour, from
    the ``MLmodel`` file read with mlfit's bounded safe YAML loader. A flavour mlfit does not
    measure is a ConfigError naming it and the ones it does."""
    from mlfit.catalog.yamlload import load_yaml

    flavours = load_yaml(folder / "MLmodel").data
    flavours = flavours.get("flavors") if isinstance(flavours, dict) else None
    if not isinstance(flavours, dict) or not flavours:
        raise ModelError(f"{uri}: the MLmodel file lists no flavours", "log the model with MLflow's log_model")
    for flavour in SUPPORTED_FLAVOURS:
        conf = flavours.get(flavour)
        if flavour in flavours:
            return _flavour_file(folder, flavour, conf if isinstance(conf, dict) else {}, uri), flavour
    named = ", ".join(sorted(str(f) for f in flavours if f not in _GENERIC_FLAVOURS)) or "python_function only"
    raise ConfigError(f"{uri}: MLflow flavour {named} is not supported; mlfit measures the "
                      f"{', '.join(SUPPORTED_FLAVOURS)} flavours",
                      "export the model to ONNX and log it with mlflow.onnx.log_model")


def _model_in(local: Path, uri: str) -> tuple[Path, str | None]:
    """What to check in a download: a plain file as it is, an MLflow model folder by its MLmodel
    file, a SavedModel folder as one model."""
    if local.is_file():
        return local, None
    if (local / "MLmodel").is_file():
        return read_mlmodel(local, uri)
    if (local / "saved_model.pb").is_file():
        return local, None
    raise ConfigError(f"{uri}: the artifact is a folder without an MLmodel file, not an MLflow model",
                      "point at the MLflow model folder or at a model file, e.g. runs:/RUN_ID/model.onnx")


@dataclass(frozen=True)
class Resolved:
    """A model URI downloaded into a private folder: the local path to check and its source."""

    path: Path
    source: ModelSource
    folder: Path = field(repr=False)

    @property
    def display(self) -> str:
        """The name reports show: the registered version resolved (models:/NAME/3), or the run URI."""
        src = self.source
        return f"models:/{src.name}/{src.version}" if src.name else src.uri

    def annotate(self, result: RunResult) -> RunResult:
        """``result`` with the URI as the model's path, its source recorded, and the private
        folder's path replaced by the URI in an error message."""
        model = result.model.model_copy(update={"path": self.display, "source": self.source})
        update: dict[str, Any] = {"model": model}
        if result.error is not None:
            text = result.error.message.replace(str(self.folder), self.display)
            update["error"] = result.error.model_copy(update={"message": text})
        return result.model_copy(update=update)


def _resolve_into(uri_text: str, folder: Path) -> Resolved:
    mlflow = require_mlflow(f"{uri_text}: an MLflow URI")
    uri = parse_uri(uri_text)
    if uri.registered:
        registry = mlflow.get_registry_uri()
        version, run_id = _resolve_version(mlflow, uri, redact(registry))
        artifact = f"models:/{uri.name}/{version}"
    else:
        registry, version, run_id = mlflow.get_tracking_uri(), None, uri.run_id
        artifact = uri.text
    local = _download(mlflow, uri, artifact, folder, redact(registry))
    path, flavour = _model_in(local, uri.text)
    relative = path.resolve().relative_to(folder.resolve()).as_posix() if path != folder else "."
    source = ModelSource(uri=uri.text, registry=redact(registry), name=uri.name, version=version, alias=uri.alias,
                         run_id=run_id, flavour=flavour, file=relative)
    return Resolved(path=path, source=source, folder=folder.resolve())


@contextlib.contextmanager
def opened(uri: str) -> Iterator[Resolved]:
    """Download ``uri`` into a private scratch folder for the ``with`` block (removed after it,
    and by the next run should this one be killed)."""
    from mlfit.scratch import run_folder

    with run_folder("mlfit-mlflow-") as folder:
        yield _resolve_into(uri, folder)


@dataclass
class LocalModels:
    """The CLI's models with every URI replaced by its downloaded path (:func:`local_models`)."""

    paths: list[Path]
    resolved: dict[str, Resolved] = field(default_factory=dict)

    def annotate(self, report: Report) -> Report:
        """The report with each downloaded model named by its URI and its source recorded."""
        results = [self._annotated(r) for r in report.results]
        return report.model_copy(update={"results": results})

    def _annotated(self, result: RunResult) -> RunResult:
        for local, resolved in self.resolved.items():
            if result.model.path == local or result.model.path.startswith(str(resolved.folder) + os.sep):
                return resolved.annotate(result)
        return result


@contextlib.contextmanager
def local_models(models: Sequence[str | Path]) -> Iterator[LocalModels]:
    """The models of one command, each ``models:/`` or ``runs:/`` URI downloaded (in order, into
    its own private folder) for the ``with`` block; plain paths pass through unchanged."""
    with contextlib.ExitStack() as stack:
        out = LocalModels(paths=[])
        for model in models:
            if not is_model_uri(model):
                out.paths.append(Path(model))
                continue
            text = model.as_posix() if isinstance(model, Path) else str(model)
            resolved = stack.enter_context(opened(text))
            out.paths.append(resolved.path)
            out.resolved[str(resolved.path.resolve())] = resolved
        yield out


# Results back to MLflow (``mlfit check --mlflow-log``, :func:`log_result`).
# For each model of a result:
# - the **verdict** as tags: ``mlfit.verdict`` (the worst over targets) and ``mlfit.verdict.TARGET``
#   per target, with ``mlfit.passed`` (the gate: what the exit code says), the exit code, mlfit's
#   version, the file's sha256 and, for a model that could not be measured, ``mlfit.error``.
#   On the **model version** for a ``models:/`` URI, on the **run** for a ``runs:/`` URI.
# - the **key figures** as metrics on a run, in SI units named in the key: per target each budget's
#   figure as judged (``mlfit.TARGET.latency.p95_s``) and its margin, and what was measured on this
#   host (``mlfit.host.latency.p95_s``, ``mlfit.host.memory.peak_bytes``...).
# - the **reports** (JSON, Markdown, HTML) as artifacts under ``mlfit/`` of that run.
# A ``runs:/`` model is logged onto its own run. A registered version (or a local file) gets a new
# run, "mlfit check NAME vVERSION", in the experiment of the run that logged the version (else
# ``experiment``, MLFLOW_EXPERIMENT_NAME / MLFLOW_EXPERIMENT_ID, or MLflow's default); the version's
# tags ``mlfit.run_id`` and ``mlfit.report`` point at it. A second check adds a new run and
# overwrites the version's tags, so the version shows its latest check and the runs keep the history.

ARTIFACT_DIR = "mlfit"
# The reports a run carries, by file name (the formats of --output).
REPORT_FILES = {"json": "mlfit-report.json", "markdown": "mlfit-report.md", "html": "mlfit-report.html"}
_UNITS = {"s": "_s", "B": "_bytes", "/s": "_per_s", "": ""}
_ERROR_TAG_CHARS = 1000


def key(name: str) -> str:
    """A target or metric name as a piece of an MLflow key (letters, digits, _ - . only)."""
    cleaned = re.sub(r"[^\w.-]", "_", name).replace("..", "_").strip(".")
    return cleaned or "_"


def verdict_tags(result: RunResult, strict: bool = False) -> dict[str, str]:
    """The verdict of one model as MLflow tags (see the module's docstring)."""
    code = result.exit_code(strict)
    tags = {"mlfit.verdict": result.verdict.value, "mlfit.passed": "true" if code == 0 else "false",
            "mlfit.exit_code": str(code), "mlfit.strict": "true" if strict else "false",
            "mlfit.version": result.mlfit_version, "mlfit.checked": result.created,
            "mlfit.model_sha256": result.model.sha256}
    for target in result.targets:
        tags[f"mlfit.verdict.{key(target.target)}"] = target.verdict.value
    if result.error is not None:
        tags["mlfit.error"] = printable(result.error.message)[:_ERROR_TAG_CHARS]
    return tags


def key_figures(result: RunResult) -> dict[str, float]:
    """The figures worth a chart, as MLflow metrics (see the module's docstring)."""
    out: dict[str, float] = {}
    for target in result.targets:
        for check in target.checks:
            name = f"mlfit.{key(target.target)}.{key(check.metric)}{_UNITS.get(check.unit, '_' + key(check.unit))}"
            if check.value is not None:
                out[name] = float(check.value)
            if check.margin is not None:
                out[f"{name}.margin"] = float(check.margin)
    measured = result.measurement
    if measured is not None:
        for pct in ("p50", "p95", "p99"):
            value = getattr(measured.latency, pct)
            if value is not None:
                out[f"mlfit.host.latency.{pct}_s"] = float(value)
        out["mlfit.host.memory.peak_bytes"] = float(measured.memory.peak_bytes)
        out["mlfit.host.cold_start.load_s"] = float(measured.cold_start.load_s)
        out["mlfit.host.cold_start.first_inference_s"] = float(measured.cold_start.first_inference_s)
        out["mlfit.host.throughput_per_s"] = float(measured.throughput.single_stream_per_s)
    return out


def _write_reports(result: RunResult, folder: Path) -> None:
    from mlfit._version import __version__
    from mlfit.report.outputs import write_outputs
    from mlfit.report.registry import parse_format

    report = Report(mlfit_version=__version__, created=result.created, results=[result], complete=result.complete)
    write_outputs(report, [(parse_format(fmt, f"{fmt}={name}"), str(folder / name)) for fmt, name in
                           REPORT_FILES.items()])


def _experiment_id(client: Any, experiment: str | None, source_run: str | None) -> str:
    """Where a new run goes: ``experiment`` by name (made if missing), else the experiment of the
    run that logged the model, else MLflow's environment variables, else its default experiment."""
    name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if experiment is None and source_run:
        try:
            return str(client.get_run(source_run).info.experiment_id)
        except Exception:  # a version registered from a run since deleted: fall through
            pass
    if name:
        found = client.get_experiment_by_name(name)
        return str(found.experiment_id) if found is not None else str(client.create_experiment(name))
    return os.environ.get("MLFLOW_EXPERIMENT_ID") or "0"


def _log_one(mlflow: Any, client: Any, result: RunResult, experiment: str | None, strict: bool) -> str:
    from mlflow.entities import Metric, RunTag

    from mlfit.scratch import run_folder

    source = result.model.source
    tags = verdict_tags(result, strict)
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in key_figures(result).items()]
    on_run = source is not None and source.name is None and source.run_id is not None
    with run_folder("mlfit-mlflow-log-") as scratch:
        folder = scratch / "reports"  # the scratch folder's owner marker is not uploaded
        folder.mkdir()
        _write_reports(result, folder)
        if on_run:
            assert source is not None and source.run_id is not None
            run_id = source.run_id
        else:
            label = f"{source.name} v{source.version}" if source is not None and source.name else \
                Path(result.model.path).name
            run = client.create_run(_experiment_id(client, experiment, source.run_id if source else None),
                                    run_name=f"mlfit check {label}"[:250],
                                    tags={"mlfit.model": result.model.path[:_ERROR_TAG_CHARS]})
            run_id = run.info.run_id
        try:
            client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
            client.log_artifacts(run_id, str(folder), ARTIFACT_DIR)
        finally:
            if not on_run:
                client.set_terminated(run_id)
    if source is not None and source.name is not None and source.version is not None:
        version_tags = {**tags, "mlfit.run_id": run_id,
                        "mlfit.report": f"runs:/{run_id}/{ARTIFACT_DIR}/{REPORT_FILES['html']}"}
        for name, value in version_tags.items():
            client.set_model_version_tag(source.name, source.version, name, value)
    return str(run_id)


def log_result(result: RunResult | Report, *, experiment: str | None = None, tracking_uri: str | None = None,
               strict: bool = False) -> list[str]:
    """Log each model's verdict (tags), key figures (metrics) and reports (artifacts) to MLflow, as the
    module's docstring says; returns the run ids written, one per model. ``strict`` makes
    INCONCLUSIVE count as not passed (``mlfit.passed``), as ``--strict`` does for the exit code.
    Any failure of MLflow is a ConfigError with one line."""
    mlflow = require_mlflow("--mlflow-log")
    results = result.results if isinstance(result, Report) else [result]
    try:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        return [_log_one(mlflow, client, one, experiment, strict) for one in results]
    except ConfigError:
        raise
    except Exception as exc:  # MlflowException, the REST client's errors, a store that refuses
        first = (str(getattr(exc, "message", "") or exc).strip().splitlines() or [type(exc).__name__])[0]
        where = tracking_uri or mlflow.get_tracking_uri()
        raise ConfigError(f"could not log the result to MLflow at {redact(where)}: {first}",
                          "check MLFLOW_TRACKING_URI and that the run or model version exists") from None
