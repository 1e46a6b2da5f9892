"""The host, runtime and model environment, and a regression compare."""

from __future__ import annotations

from mlfit.catalog.units import format_rate, format_size
from mlfit.report import svg
from mlfit.report.common import (
    change_text,
    cold_start_text,
    describe_input,
    format_value,
    interval_text,
    source_text,
)
from mlfit.report.html.page import badge, e, table
from mlfit.result import Comparison, RunResult


def _environment(result: RunResult) -> str:
    model = result.model
    rows = [
        ["model", f"<code>{e(model.path)}</code>"],
        ["sha256", f"<code>{e(model.sha256)}</code>"],
        ["format / runtime", e(f"{model.format} / {model.runtime}")],
        ["size", e(format_size(model.size_bytes))],
    ]
    if model.inputs_used:
        rows.append(
            [
                "inputs measured",
                "<br>".join(e(describe_input(t)) for t in model.inputs_used),
            ]
        )
    if model.artefact:
        rows.append(["measured artefact", e(model.artefact)])
    source = source_text(result)
    if source is not None:
        rows.append(["source", e(source)])
    m = result.measurement
    if m is not None:
        rows.extend(
            [
                [
                    "runtime",
                    e(f"{m.runtime} {m.runtime_version}, {m.threads} thread(s), {m.execution_provider}"),
                ],
                [
                    "cold start",
                    e(cold_start_text(m.cold_start)),
                ],
                [
                    "throughput",
                    e(
                        f"{format_rate(m.throughput.single_stream_per_s)} single stream"
                        + (
                            f", {format_rate(m.throughput.batched_per_s)} at batch {m.throughput.batch_size}"
                            if m.throughput.batched_per_s
                            else ""
                        )
                    ),
                ],
            ]
        )
    host = result.host
    if host is not None:
        quota = f"{host.cgroup_cpu_quota:g} CPUs" if host.cgroup_cpu_quota else "none"
        limit = format_size(host.cgroup_memory_limit) if host.cgroup_memory_limit else "none"
        rows.extend(
            [
                ["host", e(f"{host.hostname}: {host.cpu_model} ({host.arch})")],
                [
                    "cores",
                    e(
                        f"{host.cores_logical} logical, {host.cores_physical or '?'} physical, "
                        f"{host.cores_usable} usable (affinity {len(host.affinity)}, cgroup quota {quota})"
                    ),
                ],
                ["memory", e(f"{format_size(host.ram_bytes)} RAM, cgroup limit {limit}")],
                ["os / python", e(f"{host.os} / Python {host.python}")],
                ["load average (1 min)", e(f"{host.load_avg_1m:.2f}")],
                ["GPUs", e(", ".join(host.gpus) or "none")],
                ["versions", e(", ".join(f"{k} {v}" for k, v in sorted(host.versions.items())))],
                ["fingerprint", f"<code>{e(host.fingerprint)}</code>"],
            ]
        )
    rows.append(["created", e(result.created)])
    return table(["", ""], rows)


def _comparison(comparison: Comparison) -> str:
    head = (
        badge("REGRESSION", "regression", True)
        if comparison.regressed
        else badge("no regression", "unchanged", True)
    )
    out = [
        f'<section class="model"><h2>Compared with <code>{e(comparison.base_path)}</code> {head}</h2>',
        f"<p>{e(comparison.method)}. A regression is a change beyond the minimum effect whose whole "
        f"{comparison.confidence:.0%} interval lies on the worse side.</p>",
    ]
    out.extend(f'<div class="warn">{e(w)}</div>' for w in comparison.warnings)
    for model in comparison.models:
        out.append(f"<h3>{e(model.model)}</h3>")
        out.extend(f'<p class="muted">{e(n)}</p>' for n in model.notes)
        rows = [
            [
                f"<code>{e(c.metric)}</code>",
                e(format_value(c.base, c.unit)),
                e(format_value(c.new, c.unit)),
                e(change_text(c)),
                e(interval_text(c)),
                badge(c.status.value, c.status.value),
                e(c.reason),
            ]
            for c in model.changes
        ]
        forest = [
            svg.ChangeRow(c.metric, c.change, c.ci_low, c.ci_high, c.status.value)
            for c in model.changes
            if c.change is not None
        ]
        if forest:
            out.append(svg.change_forest(forest, comparison.min_effect))
        out.append(
            table(
                ["metric", "base", "new", "change", f"{comparison.confidence:.0%} interval", "status", "why"],
                rows,
                {1, 2, 3, 4},
            )
        )
    out.append("</section>")
    return "".join(out)
