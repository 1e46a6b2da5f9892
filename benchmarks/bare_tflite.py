"""The hand-written TFLite baseline: the interpreter loop a user would write.

    python benchmarks/bare_tflite.py MODEL.tflite --threads 2 --samples 500

Load the model with ai_edge_litert's Interpreter (the same threads), fill the inputs with
random data once, warm up, then time ``invoke()`` with ``perf_counter_ns`` and print one
JSON line with the figures (nearest-rank percentiles, as mlfit reports them).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--samples", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=10, help="warm-up iterations")
    parser.add_argument("--warmup-time", type=float, default=0.0, help="and at least this many seconds")
    args = parser.parse_args()

    interpreter = Interpreter(model_path=args.model, num_threads=args.threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], rng.random(detail["shape"]).astype(detail["dtype"]))

    start = time.perf_counter()
    done = 0
    while done < args.warmup or time.perf_counter() - start < args.warmup_time:
        interpreter.invoke()
        done += 1

    clock = time.perf_counter_ns
    samples = []
    for _ in range(args.samples):
        t0 = clock()
        interpreter.invoke()
        samples.append(clock() - t0)

    samples.sort()
    n = len(samples)
    print(
        json.dumps(
            {
                "n": n,
                "threads": args.threads,
                "p50": samples[max(1, math.ceil(0.50 * n)) - 1] / 1e9,
                "p95": samples[max(1, math.ceil(0.95 * n)) - 1] / 1e9,
                "mean": sum(samples) / n / 1e9,
            }
        )
    )


if __name__ == "__main__":
    main()
