"""Torch-free inference for scans: a checkpoint's weights run as an ONNX Runtime graph.

``import torch`` costs ~1.5 s on 2 CPU cores, more than scoring 5,000 32x32 images with ``fast`` takes. For the
architectures with a layer plan (``models.layout``, the description ``models.archs`` builds their torch modules
from) a scan builds the same network as an ONNX graph straight from the safetensors weights (BatchNorm folded in
numpy, normalisation inside the graph) and runs it with ONNX Runtime, without importing torch. The function is the
torch model's up to float rounding; ``tests/inference/test_onnx_engine.py`` checks every architecture here against
it. Anything else (other architectures, bf16, no ``onnxruntime``) uses torch. The graph is serialized by
``onnx_proto`` (a few protobuf messages written by hand), so a scan imports ``onnxruntime`` but not ``onnx``
(whose import alone takes longer than a small scan).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..data.arrays import images_from_array
from ..data.decode import available_cpus
from ..models.checkpoint import CheckpointError, checked_weights, display_name, read_metadata, resolve
from ..models.layout import PLANS, Plan, Step, plan_for
from ..models.spec import ModelSpec
from . import onnx_proto as proto
from .calibration import calibrated_probs

OPSET = 20  # Gelu (exact, erf-based) is an operator from opset 20 on
IR_VERSION = 9

ARCHITECTURES = tuple(PLANS)  # every architecture with a layer plan (models/layout.py) is built here
BATCH_SIZE = 64  # images per ONNX Runtime call: activations that stay in cache (~20% fewer CPU seconds than 512)


def available() -> bool:
    """Whether ``onnxruntime`` is installed (optional at run time; the ``onnx`` package is not needed)."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def supports(spec: ModelSpec) -> bool:
    return spec.arch in PLANS and spec.image_size >= 8


class _Graph:
    """Accumulates ONNX nodes and initialisers while consuming the state dict key by key."""

    def __init__(self, state: dict[str, np.ndarray], where: str) -> None:
        self.state, self.where = state, where
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []
        self.used: set[str] = set()
        self.n = 0

    def take(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """The tensor ``key`` as float64, which must have exactly the ``shape`` the plan gives it."""
        if key not in self.state:
            raise CheckpointError(f"{self.where}: tensor {key!r} is missing for this architecture")
        a = np.asarray(self.state[key], dtype=np.float64)
        if a.shape != shape:
            raise CheckpointError(f"{self.where}: tensor {key!r} is {a.shape}, expected {shape}")
        if not np.isfinite(a).all():
            raise CheckpointError(f"{self.where}: tensor {key!r} holds NaN or infinite values")
        self.used.add(key)
        return a

    def const(self, a: np.ndarray) -> str:
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(proto.tensor(name, np.asarray(a, dtype=np.float32)))
        return name

    def op(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(proto.node(kind, inputs, [out], **attrs))
        return out

    def bn(self, prefix: str, channels: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """BatchNorm at ``prefix`` (in eval mode) as (scale, shift) per channel."""
        g, b = self.take(f"{prefix}.weight", (channels,)), self.take(f"{prefix}.bias", (channels,))
        m, v = self.take(f"{prefix}.running_mean", (channels,)), self.take(f"{prefix}.running_var", (channels,))
        self.used.add(f"{prefix}.num_batches_tracked")
        scale = g / np.sqrt(v + eps)
        return scale, b - m * scale

    def conv(self, x: str, prefix: str, s: Step, bn: str | None = None) -> str:
        """Conv2d at ``prefix``; with ``bn`` the BatchNorm2d there is folded into its weights (the conv has no bias)."""
        w = self.take(f"{prefix}.weight", (s.cout, s.cin, s.kernel, s.kernel))
        if bn is None:
            bias = self.take(f"{prefix}.bias", (s.cout,))
        else:
            scale, bias = self.bn(bn, s.cout, s.eps)
            w = w * scale[:, None, None, None]
        return self.op("Conv", [x, self.const(w), self.const(bias)], kernel_shape=[s.kernel] * 2,
                       pads=[s.padding] * 4)

    def linear(self, x: str, prefix: str, cin: int, cout: int) -> str:
        w, b = self.take(f"{prefix}.weight", (cout, cin)), self.take(f"{prefix}.bias", (cout,))
        return self.op("Gemm", [x, self.const(w), self.const(b)], transB=1)


def _bn1d(g: _Graph, x: str, p: str, s: Step) -> str:
    scale, shift = g.bn(p, s.cin, s.eps)
    return g.op("Add", [g.op("Mul", [x, g.const(scale)]), g.const(shift)])


def _head(g: _Graph, x: str, p: str, s: Step) -> str:
    pooled = g.op("Concat", [g.op("GlobalMaxPool", [x]), g.op("GlobalAveragePool", [x])], axis=1)
    return g.linear(g.op("Flatten", [pooled]), f"{p}.fc", 2 * s.cin, s.cout)


# One ONNX builder per plan step kind (``layout.KINDS``): (graph, input, state dict prefix ``body.i``, step) -> output.
STEPS: dict[str, Callable[[_Graph, str, str, Step], str]] = {
    "cbg": lambda g, x, p, s: g.op("Gelu", [g.conv(x, f"{p}.0", s, bn=f"{p}.1")]),
    "res": lambda g, x, p, s: g.op("Add", [x, g.op("Gelu", [g.conv(x, f"{p}.body.0", s, bn=f"{p}.body.1")])]),
    "conv": lambda g, x, p, s: g.conv(x, p, s),
    "relu": lambda g, x, p, s: g.op("Relu", [x]),
    "pool": lambda g, x, p, s: g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2]),
    "flatten": lambda g, x, p, s: g.op("Flatten", [x]),
    "linear": lambda g, x, p, s: g.linear(x, p, s.cin, s.cout),
    "bn1d": _bn1d,
    "head": _head,
}


def _plan(spec: ModelSpec, where: str) -> Plan:
    if not supports(spec):
        raise ValueError(f"no ONNX graph for architecture {spec.arch!r} (have: {', '.join(ARCHITECTURES)})")
    try:
        return plan_for(spec.arch, spec.image_size, len(spec.classes), **spec.arch_kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: cannot build architecture: {e}") from None


def build_graph(spec: ModelSpec, state: dict[str, np.ndarray], where: str = "checkpoint") -> bytes:
    """The serialized ONNX model of ``spec`` with ``state`` (uint8 NHWC in, raw logits (N, K) out), built by
    walking the architecture's layer plan (``models.layout``) step by step, as ``models.archs.build`` does."""
    plan = _plan(spec, where)
    g = _Graph(state, where)
    std = np.asarray(spec.std, np.float64)
    x = g.op("Transpose", [g.op("Cast", ["images"], to=proto.FLOAT)], perm=[0, 3, 1, 2])
    x = g.op("Add", [g.op("Mul", [x, g.const((1 / (255 * std)).reshape(1, 3, 1, 1))]),
                     g.const((-np.asarray(spec.mean) / std).reshape(1, 3, 1, 1))])
    for i, step in enumerate(plan.steps):
        x = STEPS[step.kind](g, x, f"body.{i}", step)
    extra = sorted(set(state) - g.used)
    if extra:
        raise CheckpointError(f"{where}: unexpected tensors for architecture {spec.arch!r}: {extra[:3]}")
    side = spec.image_size
    return proto.model(g.nodes, spec.arch, [proto.value_info("images", proto.UINT8, ["N", side, side, 3])],
                       [proto.value_info(x, proto.FLOAT, ["N", plan.out_features])], g.inits, OPSET, IR_VERSION)


@dataclass
class OnnxDetector:
    """Same scores and verdicts as ``Detector`` for the architectures in ``ARCHITECTURES``, run by ONNX Runtime
    (a ``Scorer``, see ``inference.contract``)."""

    session: Any
    spec: ModelSpec
    meta: dict[str, Any]
    name: str
    uses_torch: ClassVar[bool] = False

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
    tta = property(lambda self: self.spec.tta)

    def logits(self, images: np.ndarray) -> np.ndarray:
        z = self.session.run(None, {"images": np.ascontiguousarray(images, dtype=np.uint8)})[0]
        if self.tta:
            z = (z + self.session.run(None, {"images": np.ascontiguousarray(images[:, :, ::-1])})[0]) / 2
        return z[:, 0] if z.shape[1] == 1 else z

    def scores(self, images: np.ndarray, batch_size: int | None = None, bf16: bool = False) -> np.ndarray:
        """Calibrated P(label 1) per image, or class probabilities (N, C), for images as ``images_from_array``
        takes them (``batch_size`` images per ONNX Runtime call, default ``BATCH_SIZE``)."""
        batch_size = batch_size or BATCH_SIZE
        if bf16:
            raise ValueError("the ONNX engine runs float32 only; use the torch engine for bf16")
        arr = images_from_array(images, "images")  # the one layout/dtype convention, as the torch Detector
        if arr.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(f"images are {arr.shape[1]}x{arr.shape[2]}; this model takes "
                             f"{self.image_size}x{self.image_size} (decode files with fakescope.data.decode_image)")
        parts = [self.logits(arr[i:i + batch_size]) for i in range(0, len(arr), batch_size)]
        z = np.concatenate(parts) if parts else np.zeros((0,), np.float32)
        return calibrated_probs(z, self.spec.temperature).astype(np.float32)

    def labels(self, scores: np.ndarray, threshold: float | None = None) -> list[str]:
        return self.spec.verdicts(scores, threshold)
