"""Real architectures with random weights, built with onnx.helper (no downloads).

Used for the bundled example model, the tests and the benchmarks. Deterministic: the
same seed gives byte-identical files.
"""
