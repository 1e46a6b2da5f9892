"""The input plan of a run, made in the parent before any worker starts: the batch that fills
free leading dims (:func:`choose_batch`), integer ranges read from the model, and refusals
(ConfigError, exit 2) of what cannot be measured, so that a run that cannot succeed stops in
a fraction of a second instead of after TensorFlow's 17 s import. What each file declares is
read by its format module (:func:`mlfit.formats.registry.declared_inputs`); anything that
cannot be read gives no plan, and the worker, which loads the model, still checks everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlfit.errors import ConfigError
from mlfit.formats.base import Declared
from mlfit.inputspec import InputSpec, batch_filled, batch_free, refuse_unranged_integers, resolve_shapes
from mlfit.result import TensorInfo

if TYPE_CHECKING:
    from mlfit.catalog.loader import Target


def choose_batch(targets: Sequence[Target], batch: int | None) -> tuple[int, str]:
    """The batch that fills free leading dims, and why (for the report)."""
    if batch is not None:
        return batch, "--batch"
    sizes = sorted({t.profile.batch_size for t in targets})
    if not sizes:
        return 1, "no target, so single-stream batch 1"
    names = ", ".join(t.name for t in targets if t.profile.batch_size == sizes[0])
    if len(sizes) == 1:
        return sizes[0], f"the batch_size of target {names}"
    # Each deployment configuration feeds its own targets' batch (mlfit.run.configs); this is the first's.
    return sizes[0], (f"the batch_size of each target's configuration, one run each ({names}: {sizes[0]}; "
                      f"others {', '.join(map(str, sizes[1:]))})")


def _npz_names(path: str) -> set[str]:
    from mlfit import safeio
    from mlfit.errors import MlfitError

    try:  # a regular file, its zip directory bounded (mlfit.safeio)
        with safeio.open_regular(Path(path), "the --data file") as fh, safeio.open_zip(fh, Path(path)) as archive:
            return {n[:-4] for n in archive.namelist() if n.endswith(".npy")}
    except (OSError, MlfitError):
        return set()


@dataclass(frozen=True)
class InputPlan:
    spec: InputSpec
    notes: list[str]
    shapes: dict[str, list[int]] | None  # concrete shapes when the file states its inputs
    # Every input's leading dim is free, so a batched-throughput phase can run (the worker's rule);
    # None where the file does not state its inputs. Fixed: one configuration serves every batch.
    batch_free: bool | None = None


def plan_inputs(declared: Declared | None, targets: Sequence[Target], spec: InputSpec,
                batch: int | None = None) -> InputPlan:
    """Fill the batch, take integer ranges from what the model declares (``declared``: its
    format's reader, read once in the run's facts), and refuse (ConfigError, exit 2) what cannot be
    measured, before any worker starts, for every format whose file states its inputs."""
    if spec.batch is None:
        size, why = choose_batch(targets, batch)
        spec = spec.model_copy(update={"batch": size, "batch_source": why})
    if declared is None:
        return InputPlan(spec, [], None)
    derived = {k: v for k, v in declared.ranges.items() if k not in spec.ranges and k not in spec.values}
    if derived:
        reasons = {k: declared.range_sources.get(k, "the model") for k in derived}
        spec = spec.model_copy(update={"derived_ranges": {**spec.derived_ranges, **derived},
                                       "range_sources": {**spec.range_sources, **reasons}})
    data_names = set(spec.data_arrays) | (_npz_names(spec.data_file) if spec.data_file else set())
    checked = [t for t in declared.inputs if t.name not in data_names]
    problems: list[ConfigError] = []
    shapes: dict[str, list[int]] | None = None
    try:
        shapes = resolve_shapes(checked, spec.model_copy(update={"data_arrays": {}}), {}) if len(checked) == len(
            declared.inputs) else _resolve_partial(checked, spec)
    except ConfigError as exc:
        problems.append(exc)
    try:
        refuse_unranged_integers(declared.inputs, spec, data_names, set(declared.quantized))
    except ConfigError as exc:
        problems.append(exc)
    if problems:  # every missing flag in one message: one round trip
        raise ConfigError("; and ".join(p.message for p in problems),
                          "; ".join(p.hint for p in problems if p.hint) or None)
    notes: list[str] = []
    filled = batch_filled(declared.inputs, spec, data_names)
    if filled:
        notes.append(f"batch dim of {', '.join(filled)} set to {spec.batch} from {spec.batch_source} "
                     f"(--batch N or --dim NAME=N sets it)")
    for name in derived:
        low, high = derived[name]
        notes.append(f"input {name}: values uniform in [{low:g}, {high:g}) from {spec.range_sources[name]} "
                     f"(--range {name}=LOW:HIGH overrides)")
    return InputPlan(spec, notes, shapes, batch_free=batch_free(declared.inputs))


def _resolve_partial(inputs: list[TensorInfo], spec: InputSpec) -> dict[str, list[int]] | None:
    """With --data for some inputs, the others are still checked; their shapes are not all known."""
    names = {t.name for t in inputs}
    trimmed = spec.model_copy(update={
        "data_arrays": {}, "data_file": None, "shapes": {k: v for k, v in spec.shapes.items() if k in names},
        "values": {k: v for k, v in spec.values.items() if k in names},
        "ranges": {k: v for k, v in spec.ranges.items() if k in names}})
    try:
        resolve_shapes(inputs, trimmed, {})
    except ConfigError as exc:
        if "which the model does not have" not in exc.message:
            raise
    return None
