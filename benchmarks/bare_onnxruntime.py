"""The hand-written baseline: what a user would write without mlfit.

    python benchmarks/bare_onnxruntime.py MODEL --threads 2 --samples 500 [--dim batch=1]

Load the model with onnxruntime (the same session options mlfit sets: explicit intra-op
threads, one inter-op thread, sequential execution, CPU arena on), build random inputs,
warm up, then time ``InferenceSession.run`` with ``perf_counter_ns`` and print one JSON
line with the figures. Only onnxruntime and numpy are imported, so its memory is the
runtime's and the model's, nothing else.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import onnxruntime as ort

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--samples", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=10, help="warm-up iterations")
    parser.add_argument("--warmup-time", type=float, default=0.0, help="and at least this many seconds")
    parser.add_argument("--dim", action="append", default=[], help="NAME=VALUE for a symbolic dim")
    args = parser.parse_args()
    rss_after_import = _status_kib("VmRSS") * 1024

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    session = ort.InferenceSession(args.model, sess_options=so, providers=["CPUExecutionProvider"])
    dims = dict(d.split("=", 1) for d in args.dim)
    rng = np.random.default_rng(0)
    feed = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) else int(dims[d]) for d in inp.shape]
        feed[inp.name] = rng.random(shape).astype(_DTYPES[inp.type])

    # Ask for the outputs by name, as mlfit's worker does: run(None, ...) would look the
    # names up on every call and time a slightly different call.
    names = [o.name for o in session.get_outputs()]
    start = time.perf_counter()
    done = 0
    while done < args.warmup or time.perf_counter() - start < args.warmup_time:
        session.run(names, feed)
        done += 1

    clock = time.perf_counter_ns
    samples = []
    for _ in range(args.samples):
        t0 = clock()
        session.run(names, feed)
        samples.append(clock() - t0)

    samples.sort()
    n = len(samples)
    # nearest rank, as mlfit reports it: the sample at rank ceil(q * n)
    print(
        json.dumps(
            {
                "n": n,
                "threads": args.threads,
                "p50": samples[max(1, math.ceil(0.50 * n)) - 1] / 1e9,
                "p95": samples[max(1, math.ceil(0.95 * n)) - 1] / 1e9,
                "mean": sum(samples) / n / 1e9,
                "rss_after_import_bytes": rss_after_import,
                "peak_rss_bytes": _status_kib("VmHWM") * 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
