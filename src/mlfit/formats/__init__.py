"""Model formats: what mlfit knows about each one, in one module per format behind one registry.

- :mod:`.kinds`: the :class:`ModelFormat` members; :mod:`.base`: the :class:`~.base.Format` protocol;
- :mod:`.registry`: every format, one line each, and the lookups derived from it;
- :mod:`.sniff`: recognising a file by content; ``onnx/``, :mod:`.savedmodel`, :mod:`.keras`,
  :mod:`.tflite`, :mod:`.skops`, :mod:`.pickle`: one per format;
- ``_wire/``: the bounded protobuf and flatbuffers readers every format module shares.
"""

from __future__ import annotations

from mlfit.formats.kinds import ModelFormat
from mlfit.formats.onnx.sniff import onnx_problem
from mlfit.formats.sniff import sniff, suffix_mismatch

__all__ = ["ModelFormat", "onnx_problem", "sniff", "suffix_mismatch"]
