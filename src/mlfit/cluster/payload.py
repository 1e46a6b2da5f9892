"""What ``--cluster`` sends: a model's bytes read from the same checked private copy a local run
measures, so every refusal a local run makes happens here, before a byte leaves this machine.

Decision (issue 18, item 11): the payload is built by the local pipeline's own steps, in order:
identify the format from content (:func:`mlfit.modelref.identify`), make the private copy
(:func:`mlfit.safety.snapshot.private_copy`: regular files only, no FIFO or device is ever opened,
symlinks followed only inside the model's folder, bounded counts), refuse a copy whose kind
changed, run the safety scans (:func:`mlfit.formats.registry.check_model`) and the format's
static pre-checks (``Format.static_size``: ONNX external data, custom operators) on the copy,
and only then read the copy's files. Any
refusal is an :class:`~mlfit.errors.MlfitError` for this model alone: the caller turns it into
the model's error result and the other models go on. The worker runs the checks again on what
it receives (it trusts no sender either).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlfit.cluster.tasks import MAX_PAYLOAD_BYTES, ModelPayload
from mlfit.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from mlfit.options import MeasureOptions


def pack(path: Path, shared_path: bool, options: MeasureOptions) -> ModelPayload:
    """The model's checked bytes (or only its path with ``shared_path``); MlfitError when a local
    run would refuse it, or when it is too large to send."""
    from mlfit.formats import sniff
    from mlfit.formats.registry import check_model, get
    from mlfit.modelref import identify
    from mlfit.safety.snapshot import private_copy

    origin = path.absolute()
    ref = identify(origin, options.runtime)
    if shared_path:  # the workers read it themselves, and run every check there
        return ModelPayload(origin.name, str(origin), None, origin.is_dir())
    with private_copy(ref.path, get(ref.format).copy_policy) as copy:
        if copy.is_file() and sniff(copy) is not ref.format:
            raise ModelError(f"{origin}: the model changed while it was being checked",
                             "check it again once nothing is writing to it")
        check_model(copy, ref.format, options.trust_model, options.signature)
        get(ref.format).static_size(copy, options.custom_op_libraries)
        return ModelPayload(origin.name, str(origin), _read_copy(origin, copy), copy.is_dir())


def _read_copy(origin: Path, copy: Path) -> dict[str, bytes]:
    """Every file of the private copy (only regular files are ever in it), size checked before
    any byte is read. Names are relative to the model's folder; a single file keeps its own name,
    and ONNX external data made beside it keeps its relative place."""
    base = copy if copy.is_dir() else copy.parent
    members: list[tuple[str, Path, int]] = []
    for folder, _, names in os.walk(base):
        for name in names:
            file = Path(folder) / name
            members.append((file.relative_to(base).as_posix(), file, file.lstat().st_size))
    total = sum(size for _, _, size in members)
    if total > MAX_PAYLOAD_BYTES:
        raise ConfigError(
            f"{origin}: {total / 2**30:.1f} GiB is too large to send to cluster workers",
            "put the models on a filesystem every worker mounts and add --shared-path",
        )
    return {relative: file.read_bytes() for relative, file, _ in sorted(members)}
