"""The model is read once per run: the gate's ModelFacts carries the hash, the declared inputs and
the static size, and the later stages (input plan, static analysis, the result's model block)
read them instead of the file (one sha256 pass and one ONNX parse in the parent, where there
were two of each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfit import safeio
from mlfit.api import MeasureOptions, check


def test_one_hash_and_one_parse_per_run(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    from mlfit import onnxpb
    from mlfit.formats.onnx import proto

    calls = {"sha256": 0, "parse": 0}
    real_sha, real_load, real_parse = safeio.sha256_of, onnx.load, onnxpb.load_model

    def counted_sha(*args: object, **kwargs: object) -> str:
        calls["sha256"] += 1
        return real_sha(*args, **kwargs)  # type: ignore[arg-type]

    def counted_load(*args: object, **kwargs: object) -> object:
        calls["parse"] += 1
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(safeio, "sha256_of", counted_sha)
    def counted_parse(*args: object, **kwargs: object) -> object:
        calls["parse"] += 1
        return real_parse(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(onnx, "load", counted_load)
    monkeypatch.setattr(onnxpb, "load_model", counted_parse)  # the parent parses without onnx (issue 22)
    monkeypatch.setattr(proto, "_LAST_PARSE", [])
    result = check(tiny_model, ["edge"], options=MeasureOptions(min_time=0.2, max_time=2, warmup=2))
    assert result.error is None, result.error
    assert calls == {"sha256": 1, "parse": 1}
    assert result.model.sha256 == real_sha(tiny_model)
    assert result.model.path == str(tiny_model.resolve())
