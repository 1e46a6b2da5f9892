"""Which variants ``check --suggest`` tries for a target, cheapest first (pure: nothing is run here).

A variant changes one thing from the original deployment: the thread count or the batch the
target asks for (the same file, measured again), an input size the user asked about
(``--what-if dim=NAME:V1,V2``), or the file itself (int8, fp16, a TFLite build), built by a child
process (:mod:`mlfit.advise.child`) with the library made for it. A combination
(:mod:`mlfit.advise.combos`) changes two of these at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from mlfit.catalog.loader import Target, is_gpu_target
from mlfit.catalog.schema import Runtime
from mlfit.errors import ConfigError


class Kind(str, Enum):
    THREADS = "threads"
    BATCH = "batch"
    INT8_DYNAMIC = "int8-dynamic"
    INT8_STATIC = "int8-static"
    FP16 = "fp16"
    TFLITE_FLOAT = "tflite-float"
    TFLITE_INT8 = "tflite-int8"
    DIM = "dim"  # --what-if dim=NAME:V: the same file fed another input size
    COMBO = "combo"  # two of the above at once (mlfit.advise.combos)


# Kinds that build a new file (in a child process); the others re-measure the original file.
BUILT = frozenset({Kind.INT8_DYNAMIC, Kind.INT8_STATIC, Kind.FP16, Kind.TFLITE_FLOAT, Kind.TFLITE_INT8})
# The runtime that runs each built kind's file (its format is that runtime's: formats.registry).
OUTPUT: dict[Kind, Runtime] = {
    Kind.INT8_DYNAMIC: Runtime.ONNXRUNTIME, Kind.INT8_STATIC: Runtime.ONNXRUNTIME, Kind.FP16: Runtime.ONNXRUNTIME,
    Kind.TFLITE_FLOAT: Runtime.TFLITE, Kind.TFLITE_INT8: Runtime.TFLITE,
}


@dataclass(frozen=True)
class Variant:
    kind: Kind
    label: str  # threads=2, int8-dynamic
    change: str  # in words, for the report
    threads: int | None = None
    batch: int | None = None
    dims: tuple[tuple[str, int], ...] = ()  # input dims set by --what-if
    build: Kind | None = None  # the built file behind a combination (int8-dynamic+threads=2)

    @property
    def file_kind(self) -> Kind | None:
        """The kind of file this variant runs: its own build, a combination's, or None (the original)."""
        return self.kind if self.kind in BUILT else self.build

    @property
    def builds_file(self) -> bool:
        return self.file_kind is not None


WhatIf = tuple[tuple[str, tuple[int, ...]], ...]  # (dim name, sizes) per --what-if


def parse_what_if(specs: list[str] | None) -> WhatIf:
    """``--what-if dim=NAME:V1,V2`` (repeatable): the input sizes to try, checked before anything
    is measured; a bad spec is a one-line ConfigError naming the form expected."""
    out: dict[str, tuple[int, ...]] = {}
    example = "--what-if dim=height:256,224"
    for raw in specs or []:
        key, sep, rest = raw.partition("=")
        name, colon, values = rest.partition(":")
        if key.strip() != "dim" or not sep:
            raise ConfigError(f"--what-if {raw}: expected dim=NAME:SIZE[,SIZE...]",
                              f"e.g. {example} (only input dims can be asked about)")
        name = name.strip()
        if not name or not colon or not values.strip():
            raise ConfigError(f"--what-if {raw}: expected dim=NAME:SIZE[,SIZE...]", f"e.g. {example}")
        sizes: list[int] = []
        for text in values.split(","):
            text = text.strip()
            if not text.isdigit() or int(text) < 1 or int(text) > 1_000_000:
                raise ConfigError(f"--what-if {raw}: '{text}' is not a size (a whole number from 1)",
                                  f"e.g. {example}")
            if int(text) not in sizes:
                sizes.append(int(text))
        if name in out:
            raise ConfigError(f"--what-if names dim '{name}' twice", "give all its sizes in one: dim=NAME:V1,V2")
        out[name] = tuple(sizes)
    return tuple(out.items())


def _what_if(what_if: WhatIf) -> list[Variant]:
    return [Variant(Kind.DIM, f"{name}={size}", f"input dim {name} = {size}", dims=((name, size),))
            for name, sizes in what_if for size in sizes]


def _threads(target: Target) -> list[Variant]:
    """Every thread count from 1 to the target's cores but its own, fewest first (a smaller
    count often wins on a loaded or small device, and costs nothing to try)."""
    own = target.profile.threads
    cores = target.hardware.cpu.cores
    return [Variant(Kind.THREADS, f"threads={n}", f"{n} intra-op thread{'s' if n > 1 else ''} instead of {own}",
                    threads=n) for n in range(1, max(cores, own) + 1) if n != own]


def _batches(target: Target) -> list[Variant]:
    """Batch sizes below the target's (halving down to 1): a smaller batch answers sooner."""
    own = target.profile.batch_size
    sizes: list[int] = []
    size = own // 2
    while size >= 1:
        sizes.append(size)
        size //= 2
    return [Variant(Kind.BATCH, f"batch={b}", f"batch {b} instead of {own}", batch=b) for b in sizes]


def plan_variants(runtime: Runtime, target: Target, has_data: bool, convert: bool = False,
                  what_if: WhatIf = ()) -> list[Variant]:
    """The variants worth trying for ``target``, cheapest first: deployment settings (no new
    file), the input sizes asked about (``--what-if``), then the builds a library makes (ONNX
    Runtime's quantiser, its fp16 converter, the TFLite converter) where the target can run what
    they produce."""
    gpu = is_gpu_target(target)
    variants: list[Variant] = []
    # Deployment settings cannot give a target a runtime it lacks (only --convert or a build can);
    # on a GPU target the host threads only feed the device: thread counts are not worth a run.
    if runtime in target.profile.runtimes or convert:
        variants = [*([] if gpu else _threads(target)), *_batches(target), *_what_if(what_if)]
    if runtime is Runtime.ONNXRUNTIME and Runtime.ONNXRUNTIME in target.profile.runtimes:
        if gpu:
            variants.append(Variant(Kind.FP16, "fp16", "weights and compute in float16 (inputs and outputs "
                                    "kept float32)"))
        else:
            variants.append(Variant(Kind.INT8_DYNAMIC, "int8-dynamic", "int8 weights, activations quantised "
                                    "at run time (onnxruntime.quantization.quantize_dynamic)"))
            if has_data:
                variants.append(Variant(Kind.INT8_STATIC, "int8-static", "int8 weights and activations, QDQ, "
                                        "calibrated on --data (onnxruntime.quantization.quantize_static)"))
    if runtime is Runtime.TENSORFLOW and Runtime.TFLITE in target.profile.runtimes:  # Keras or SavedModel
        variants.append(Variant(Kind.TFLITE_FLOAT, "tflite-float", "TFLite build, float32 (TFLiteConverter)"))
        variants.append(Variant(Kind.TFLITE_INT8, "tflite-int8", "TFLite build, int8 weights and activations "
                                "(TFLiteConverter, representative data)"))
    return variants
