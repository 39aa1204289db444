"""Torch-free inference for scans: a checkpoint's weights run as an ONNX Runtime graph.

``import torch`` costs ~1.5 s on 2 CPU cores, more than scoring 5,000 32x32 images with ``fast`` takes. For the
architectures listed in ``LAYERS`` a scan builds the same network as an ONNX graph straight from the safetensors
weights (BatchNorm folded in numpy, normalisation inside the graph) and runs it with ONNX Runtime, without importing
torch. The function is the torch model's up to float rounding; ``tests/inference/test_onnx_engine.py`` checks every
architecture here against it. Anything else (other architectures, bf16, no ``onnxruntime``) uses torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.decode import available_cpus
from ..models.checkpoint import CheckpointError, checked_weights, display_name, read_metadata, resolve
from ..models.spec import ModelSpec
from .calibration import calibrated_probs

OPSET = 20  # Gelu (exact, erf-based) is an operator from opset 20 on

# The layer sequence of each architecture's ``nn.Sequential`` body, index for index (see models/archs.py):
# cbg = Conv-BN-GELU block, res = x + cbg(x), pool = MaxPool 2, head = [global max, global mean] -> Linear.
LAYERS: dict[str, list[str]] = {
    "fast": ["cbg", "pool", "cbg", "pool", "cbg", "pool", "cbg", "head"],
    "best": ["cbg", "cbg", "pool", "cbg", "res", "pool", "cbg", "res", "pool", "cbg", "head"],
    "seed-cnn": ["conv", "relu", "pool", "conv", "relu", "pool", "flatten", "linear", "bn1d", "relu", "linear"],
}


def available() -> bool:
    """Whether ``onnx`` and ``onnxruntime`` can be imported (they are optional at run time)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def supports(spec: ModelSpec) -> bool:
    return spec.arch in LAYERS and spec.image_size >= 8


class _Graph:
    """Accumulates ONNX nodes and initialisers while consuming the state dict key by key."""

    def __init__(self, state: dict[str, np.ndarray], where: str) -> None:
        self.state, self.where = state, where
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.used: set[str] = set()
        self.n = 0

    def take(self, key: str, ndim: int) -> np.ndarray:
        if key not in self.state:
            raise CheckpointError(f"{self.where}: tensor {key!r} is missing for this architecture")
        a = np.asarray(self.state[key], dtype=np.float64)
        if a.ndim != ndim or not np.isfinite(a).all():
            raise CheckpointError(f"{self.where}: tensor {key!r} has shape {a.shape} or non-finite values")
        self.used.add(key)
        return a

    def const(self, a: np.ndarray) -> str:
        from onnx import numpy_helper

        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(a, dtype=np.float32), name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def bn(self, prefix: str, channels: int, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
        """BatchNorm at ``prefix`` (in eval mode) as (scale, shift) per channel."""
        g, b = self.take(f"{prefix}.weight", 1), self.take(f"{prefix}.bias", 1)
        m, v = self.take(f"{prefix}.running_mean", 1), self.take(f"{prefix}.running_var", 1)
        if not len(g) == len(b) == len(m) == len(v) == channels:
            raise CheckpointError(f"{self.where}: BatchNorm {prefix!r} does not have {channels} channels")
        self.used.add(f"{prefix}.num_batches_tracked")
        scale = g / np.sqrt(v + eps)
        return scale, b - m * scale

    def conv(self, x: str, prefix: str, cin: int, bn: str | None, pad: int) -> tuple[str, int]:
        w = self.take(f"{prefix}.weight", 4)
        if w.shape[1] != cin or w.shape[2:] != (3, 3):
            raise CheckpointError(f"{self.where}: {prefix}.weight is {w.shape}, expected (C, {cin}, 3, 3)")
        bias = self.take(f"{prefix}.bias", 1) if bn is None else np.zeros(w.shape[0])
        if bn is not None:
            scale, shift = self.bn(bn, w.shape[0])
            w, bias = w * scale[:, None, None, None], shift
        out = self.op("Conv", [x, self.const(w), self.const(bias)], kernel_shape=[3, 3], pads=[pad] * 4)
        return out, w.shape[0]

    def cbg(self, x: str, prefix: str, cin: int) -> tuple[str, int]:
        y, c = self.conv(x, f"{prefix}.0", cin, f"{prefix}.1", pad=1)
        return self.op("Gelu", [y]), c


def build_graph(spec: ModelSpec, state: dict[str, np.ndarray], where: str = "checkpoint") -> bytes:
    """The serialized ONNX model of ``spec`` with ``state`` (uint8 NHWC in, raw logits (N, K) out)."""
    from onnx import TensorProto, helper

    if not supports(spec):
        raise ValueError(f"no ONNX graph for architecture {spec.arch!r} (have: {', '.join(LAYERS)})")
    g = _Graph(state, where)
    std = np.asarray(spec.std, np.float64)
    x = g.op("Transpose", [g.op("Cast", ["images"], to=TensorProto.FLOAT)], perm=[0, 3, 1, 2])
    x = g.op("Add", [g.op("Mul", [x, g.const((1 / (255 * std)).reshape(1, 3, 1, 1))]),
                     g.const((-np.asarray(spec.mean) / std).reshape(1, 3, 1, 1))])
    c, side = 3, spec.image_size
    layers = LAYERS[spec.arch]
    for i, kind in enumerate(layers):
        p = f"body.{i}"
        if kind == "cbg":
            x, c = g.cbg(x, p, c)
        elif kind == "res":
            y, c2 = g.cbg(x, f"{p}.body", c)
            if c2 != c:
                raise CheckpointError(f"{where}: residual block {p} changes the channel count")
            x = g.op("Add", [x, y])
        elif kind == "conv":
            x, c = g.conv(x, p, c, None, pad=0)
            side -= 2
        elif kind == "relu":
            x = g.op("Relu", [x])
        elif kind == "pool":
            x, side = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2]), side // 2
        elif kind == "flatten":
            x, c = g.op("Flatten", [x]), c * side * side
        elif kind == "head":
            x = g.op("Flatten", [g.op("Concat", [g.op("GlobalMaxPool", [x]), g.op("GlobalAveragePool", [x])],
                                      axis=1)])
            x, c = _linear(g, x, f"{p}.fc", 2 * c)
        elif kind == "linear":
            x, c = _linear(g, x, p, c)
        elif kind == "bn1d":
            scale, shift = g.bn(p, c, eps=1e-3)  # seed-cnn's BatchNorm1d keeps Keras's eps
            x = g.op("Add", [g.op("Mul", [x, g.const(scale)]), g.const(shift)])
    extra = sorted(set(state) - g.used)
    if extra:
        raise CheckpointError(f"{where}: unexpected tensors for architecture {spec.arch!r}: {extra[:3]}")
    graph = helper.make_graph(
        g.nodes, spec.arch, [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", spec.image_size,
                                                                                         spec.image_size, 3])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", c])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    return model.SerializeToString()


def _linear(g: _Graph, x: str, prefix: str, cin: int) -> tuple[str, int]:
    w = g.take(f"{prefix}.weight", 2)
    if w.shape[1] != cin:
        raise CheckpointError(f"{g.where}: {prefix}.weight is {w.shape}, expected (K, {cin})")
    return g.op("Gemm", [x, g.const(w), g.const(g.take(f"{prefix}.bias", 1))], transB=1), w.shape[0]


@dataclass
class OnnxDetector:
    """Same scores and verdicts as ``Detector`` for the architectures in ``LAYERS``, run by ONNX Runtime."""

    session: Any
    spec: ModelSpec
    meta: dict[str, Any]
    name: str

    @classmethod
    def load(cls, model: str | os.PathLike[str] = "fast", threads: int | None = None) -> OnnxDetector:
        import onnxruntime as ort
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        jpath = resolve(model)
        doc = read_metadata(jpath)
        wpath = checked_weights(jpath, doc)
        spec = ModelSpec.from_dict(doc["spec"])
        try:
            state = load_file(str(wpath))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{wpath}: not a readable safetensors file ({e})") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or available_cpus()
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # leave decode workers their CPUs
        opts.log_severity_level = 3
        session = ort.InferenceSession(build_graph(spec, state, str(wpath)), opts, providers=["CPUExecutionProvider"])
        return cls(session, spec, doc, display_name(model))

    task = property(lambda self: self.spec.task)
    classes = property(lambda self: self.spec.classes)
    threshold = property(lambda self: self.spec.threshold)
    image_size = property(lambda self: self.spec.image_size)
    tta = property(lambda self: bool(self.meta.get("tta", False)))

    def logits(self, images: np.ndarray) -> np.ndarray:
        z = self.session.run(None, {"images": np.ascontiguousarray(images, dtype=np.uint8)})[0]
        if self.tta:
            z = (z + self.session.run(None, {"images": np.ascontiguousarray(images[:, :, ::-1])})[0]) / 2
        return z[:, 0] if z.shape[1] == 1 else z

    def scores(self, images: np.ndarray, batch_size: int = 512, bf16: bool = False) -> np.ndarray:
        """Calibrated P(label 1) per image, or class probabilities (N, C), for uint8 NHWC images."""
        if bf16:
            raise ValueError("the ONNX engine runs float32 only; use the torch engine for bf16")
        arr = np.asarray(images)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"expected uint8 images (N, {self.image_size}, {self.image_size}, 3), got "
                             f"{arr.dtype} {arr.shape}")
        parts = [self.logits(arr[i:i + batch_size]) for i in range(0, len(arr), batch_size)]
        z = np.concatenate(parts) if parts else np.zeros((0,), np.float32)
        return calibrated_probs(z, self.spec.temperature).astype(np.float32)

    def labels(self, scores: np.ndarray, threshold: float | None = None) -> list[str]:
        return self.spec.verdicts(scores, threshold)
