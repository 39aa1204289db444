"""The few ONNX protobuf messages the ONNX engine writes, encoded by hand: no ``onnx`` package at run time.

``import onnx`` costs ~0.7-1.2 s (it pulls in ``ml_dtypes``), more than a whole small scan; the engine only needs to
*write* a model (a graph of nodes, float32 initialisers, typed inputs and outputs) for ONNX Runtime to read. The
messages and field numbers are those of ``onnx/onnx.proto`` (proto2: repeated integers unpacked); fields are
written in field-number order, as protobuf itself writes them, so ``onnx.load_from_string(b).SerializeToString()``
gives back the same bytes (``tests/inference/test_onnx_engine.py`` checks that, and ``onnx.checker``).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

FLOAT, UINT8 = 1, 2  # TensorProto.DataType
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_FLOATS, _ATTR_INTS = 1, 2, 3, 6, 7  # AttributeProto.AttributeType


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64: two's complement, ten bytes
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _str(field: int, text: str) -> bytes:
    return _bytes(field, text.encode("utf-8"))


def _float(field: int, value: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", value)


def attribute(name: str, value: int | float | str | Sequence[int] | Sequence[float]) -> bytes:
    """AttributeProto: name 1, f 2, i 3, s 4, floats 7, ints 8, type 20 (as ``onnx.helper.make_attribute``)."""
    head = _str(1, name)
    if isinstance(value, bool) or isinstance(value, int):
        return head + _int(3, int(value)) + _int(20, _ATTR_INT)
    if isinstance(value, float):
        return head + _float(2, value) + _int(20, _ATTR_FLOAT)
    if isinstance(value, str):
        return head + _str(4, value) + _int(20, _ATTR_STRING)
    items = list(value)
    if all(isinstance(v, int) for v in items):
        return head + b"".join(_int(8, v) for v in items) + _int(20, _ATTR_INTS)
    return head + b"".join(_float(7, float(v)) for v in items) + _int(20, _ATTR_FLOATS)


def node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attrs: object) -> bytes:
    """NodeProto: input 1, output 2, op_type 4, attribute 5 (sorted by name, as ``onnx.helper.make_node``)."""
    return (b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs) + _str(4, op_type)
            + b"".join(_bytes(5, attribute(k, v)) for k, v in sorted(attrs.items())))  # type: ignore[arg-type]


def tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto of a float32 array: dims 1, data_type 2, name 8, raw_data 9 (little-endian)."""
    a = np.ascontiguousarray(array, dtype="<f4")
    return b"".join(_int(1, d) for d in a.shape) + _int(2, FLOAT) + _str(8, name) + _bytes(9, a.tobytes())


def value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> bytes:
    """ValueInfoProto (name 1, type 2) of a tensor: TypeProto.tensor_type 1 {elem_type 1, shape 2 {dim 1
    {dim_value 1 | dim_param 2}}}; string dimensions are symbolic (e.g. the batch ``N``)."""
    dims = b"".join(_bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in shape)
    return _str(1, name) + _bytes(2, _bytes(1, _int(1, elem_type) + _bytes(2, dims)))


def model(nodes: Sequence[bytes], name: str, inputs: Sequence[bytes], outputs: Sequence[bytes],
          initializers: Sequence[bytes], opset: int, ir_version: int) -> bytes:
    """A serialized ModelProto: ir_version 1, graph 7 {node 1, name 2, initializer 5, input 11, output 12},
    opset_import 8 {domain 1 (the default ""), version 2}."""
    graph = (b"".join(_bytes(1, n) for n in nodes) + _str(2, name) + b"".join(_bytes(5, t) for t in initializers)
             + b"".join(_bytes(11, v) for v in inputs) + b"".join(_bytes(12, v) for v in outputs))
    return _int(1, ir_version) + _bytes(7, graph) + _bytes(8, _str(1, "") + _int(2, opset))
