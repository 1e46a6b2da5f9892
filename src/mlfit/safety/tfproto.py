"""SavedModel protos parsed the way TensorFlow parses them, without importing TensorFlow.

The message classes come from TensorFlow's own descriptors
(:mod:`mlfit.safety.tf_descriptors`) loaded into a private descriptor pool, so:

- ``saved_model.pb`` is parsed by the protobuf runtime (``ParseFromString``): the last
  occurrence of a singular field wins, repeated embedded messages merge, unknown fields are
  skipped; exactly what TensorFlow's ``saved_model.ParseFromString`` does.
- ``saved_model.pbtxt`` goes through ``google.protobuf.text_format.Parse``, the function
  TensorFlow's loader calls (a field given twice is an error there too).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import DecodeError

from mlfit.safety.tf_descriptors import descriptor_set


class ProtoError(Exception):
    """The bytes or text do not parse as the message TensorFlow expects."""


@cache
def pool() -> descriptor_pool.DescriptorPool:
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set())
    private = descriptor_pool.DescriptorPool()
    for proto in files.file:
        private.Add(proto)
    return private


@cache
def message_class(full_name: str) -> Any:
    """The message class of ``tensorflow.<Name>`` from the private pool."""
    return message_factory.GetMessageClass(pool().FindMessageTypeByName(full_name))


def parse_binary(data: bytes, full_name: str = "tensorflow.SavedModel") -> Any:
    message = message_class(full_name)()
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ProtoError(f"not a valid {full_name.rpartition('.')[2]} protobuf ({_short(exc)})") from None
    return message


def parse_text(text: str, full_name: str = "tensorflow.SavedModel") -> Any:
    message = message_class(full_name)()
    try:
        text_format.Parse(text, message, descriptor_pool=pool())
    except (text_format.ParseError, RuntimeError, ValueError) as exc:
        raise ProtoError(f"not a valid text-format {full_name.rpartition('.')[2]} ({_short(exc)})") from None
    return message


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
