"""Deployment configurations: which worker runs a check needs (the "plan" stage).

A target asks for a runtime, a thread count and a batch size. Each distinct
(runtime, threads, batch) among the chosen targets is measured in its own worker run, with its
own memory phases, and a target's figures come only from its own configuration's run; targets
that share one share the measurement, so the cost grows with distinct configurations, not with
targets.

- **threads**: the target's ``threads`` capped at the cores this process may use (a 4-thread
  target is measured at 2 threads on a 2-core host and projected from there to its 4 cores).
  ``--threads N`` measures every configuration at N; the projection still aims at each target's
  own thread count.
- **batch**: the target's ``batch_size`` (the worker times single-stream latency, then batched
  throughput at that batch when it is > 1, each phase with its memory high-water mark).
  ``--batch`` (``MeasureOptions.batch_size``) replaces every target's batch. A scikit-learn
  model whose targets ask for batch 1 is also timed at ``SKLEARN_THROUGHPUT_BATCH`` rows, as before.
- **fixed batch**: a model whose leading dims are fixed cannot run at another batch, so the
  targets' batch sizes do not split it: one configuration per thread count, at batch 1.
- **runtime**: the runtime that executes the model (its own, or the ``--convert`` artefact's).

Node profiling for the projection runs once, in the first (primary) configuration's worker, at
every thread count any configuration uses: per-node times at the model's input shapes do not
depend on the target's batch, so the profile is shared, and five targets that share one
configuration cost one worker run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlfit.catalog.loader import Target
from mlfit.catalog.schema import Runtime
from mlfit.options import SKLEARN_THROUGHPUT_BATCH, MeasureOptions


@dataclass(frozen=True)
class Configuration:
    """One deployment configuration as measured on this host, and the targets that share it."""

    runtime: Runtime
    threads: int
    batch: int
    targets: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.runtime.value, self.threads, self.batch)

    @property
    def label(self) -> str:
        return f"{self.runtime.value}, {self.threads} thread{'s' if self.threads != 1 else ''}, batch {self.batch}"


def configuration_of(target: Target | None, runtime: Runtime, options: MeasureOptions, cores: int,
                     batch_free: bool = True) -> tuple[str, int, int]:
    """The (runtime, threads, batch) key ``target`` is measured in on a host with ``cores`` usable
    cores (``None``: a profile without targets). A model whose leading dims are fixed
    (``batch_free`` False) runs at its own batch whatever the target asks: batch 1 for all."""
    if options.threads is not None:
        threads = options.threads
    else:
        wanted = target.profile.threads if target is not None else cores
        threads = max(1, min(wanted, cores))
    batch = options.batch_size or (target.profile.batch_size if target is not None else 1)
    if batch <= 1 and not options.batch_size and runtime is Runtime.SKLEARN:
        batch = SKLEARN_THROUGHPUT_BATCH
    return (runtime.value, threads, batch if batch_free else 1)


def plan_configurations(targets: Sequence[Target], runtime: Runtime, options: MeasureOptions,
                        cores: int, batch_free: bool = True) -> list[Configuration]:
    """The distinct configurations ``targets`` ask for, in the order the targets first name them
    (the first is the primary one). Without targets: one configuration, the host's."""
    if not targets:
        rt, threads, batch = configuration_of(None, runtime, options, cores, batch_free)
        return [Configuration(Runtime(rt), threads, batch)]
    grouped: dict[tuple[str, int, int], list[str]] = {}
    for target in targets:
        grouped.setdefault(configuration_of(target, runtime, options, cores, batch_free), []).append(target.name)
    return [Configuration(Runtime(rt), threads, batch, tuple(names))
            for (rt, threads, batch), names in grouped.items()]
