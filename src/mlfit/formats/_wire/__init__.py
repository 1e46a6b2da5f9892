"""Bounded readers of the wire formats model files are written in (protobuf, flatbuffers):
the one reader of each that every format module uses. Pure Python; no runtime, no onnx."""
