"""Layer plans: the one declarative description of the plain ``nn.Sequential`` architectures (no torch import).

A ``Plan`` lists an architecture's body step by step, with every channel count resolved from its keyword
arguments. Two builders walk the SAME plan: ``models.archs`` turns each step into torch modules (``nn.Sequential``
index ``i`` = step ``i``) and ``inference.onnx_engine`` turns it into ONNX nodes reading the state dict keys of
those modules. Adding a kind means teaching both builders; ``tests/models`` checks they know the same kinds.

Step kinds and the sub-module (state dict) names they create under their index ``i``:

=========  ==================================================================  ==========================
kind       torch modules                                                       parameters under ``i.``
=========  ==================================================================  ==========================
cbg        Conv2d(cin, cout, k, padding, bias=False), BatchNorm2d(cout), GELU  ``0.weight``, ``1.*``
res        x + cbg(x), channels unchanged                                      ``body.0.weight``, ``body.1.*``
conv       Conv2d(cin, cout, k, padding) with bias                             ``weight``, ``bias``
relu       ReLU(inplace=True)                                                  -
pool       MaxPool2d(2)                                                        -
flatten    Flatten; ``cout`` = cin * side * side features                      -
linear     Linear(cin, cout)                                                   ``weight``, ``bias``
bn1d       BatchNorm1d(cin, eps, momentum)                                     ``weight``, ``bias``, stats
head       [global max, global mean] pooling, then Linear(2 * cin, cout)       ``fc.weight``, ``fc.bias``
=========  ==================================================================  ==========================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

KINDS = ("cbg", "res", "conv", "relu", "pool", "flatten", "linear", "bn1d", "head")


@dataclass(frozen=True)
class Step:
    """One entry of a plan: ``kind`` (see ``KINDS``), input and output channels (or features), and options."""

    kind: str
    cin: int
    cout: int
    kernel: int = 3
    padding: int = 1
    eps: float = 1e-5
    momentum: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown layer kind {self.kind!r}; known: {', '.join(KINDS)}")
        if self.kind in ("res", "relu", "pool", "bn1d") and self.cin != self.cout:
            raise ValueError(f"a {self.kind!r} step keeps its channel count, got {self.cin} -> {self.cout}")


@dataclass(frozen=True)
class Plan:
    """An architecture body as steps, plus the named layers it declares (``models.layers.LAYER_ROLES``)."""

    arch: str
    steps: tuple[Step, ...]
    layer_names: dict[str, str] = field(default_factory=dict)

    @property
    def out_features(self) -> int:
        return self.steps[-1].cout


def out_dim(num_classes: int) -> int:
    """Logits per image: one for binary tasks (label 1 = the thing we detect), else one per class."""
    return 1 if num_classes <= 2 else num_classes


def _cbg(cin: int, cout: int) -> Step:
    return Step("cbg", cin, cout)


def _pool(c: int) -> Step:
    return Step("pool", c, c)


def fast_plan(image_size: int = 32, num_classes: int = 2, in_chans: int = 3, width: int = 24) -> Plan:
    """4 conv-BN-GELU stages, the first at full resolution, then the global max+mean pooling head."""
    w = width
    steps = (_cbg(in_chans, w), _pool(w), _cbg(w, 2 * w), _pool(2 * w), _cbg(2 * w, 4 * w), _pool(4 * w),
             _cbg(4 * w, 4 * w), Step("head", 4 * w, out_dim(num_classes)))
    return Plan("fast", steps, {"features": "6.0", "classifier": "7.fc"})


def best_plan(image_size: int = 32, num_classes: int = 2, in_chans: int = 3, width: int = 32) -> Plan:
    """Two convs at full resolution, residual blocks at 1/2 and 1/4, then the pooling head."""
    w = width
    steps = (_cbg(in_chans, w), _cbg(w, 2 * w), _pool(2 * w), _cbg(2 * w, 4 * w), Step("res", 4 * w, 4 * w),
             _pool(4 * w), _cbg(4 * w, 8 * w), Step("res", 8 * w, 8 * w), _pool(8 * w), _cbg(8 * w, 8 * w),
             Step("head", 8 * w, out_dim(num_classes)))
    return Plan("best", steps, {"features": "9.0", "classifier": "10.fc"})


def wide_plan(image_size: int = 32, num_classes: int = 2, in_chans: int = 3, width: int = 64) -> Plan:
    """airbench-shaped: three conv groups of widths w, 4w, 4w at 1/2, 1/4 and 1/8 resolution (two convs each),
    one stem conv at full resolution, then the pooling head. ~0.14 GMACs at 32x32 with ``width`` 64."""
    w, v = width, 4 * width
    steps = (_cbg(in_chans, w), _pool(w), _cbg(w, w), _cbg(w, v), _pool(v), _cbg(v, v), _cbg(v, v), _pool(v),
             _cbg(v, v), Step("head", v, out_dim(num_classes)))
    return Plan("wide", steps, {"features": "8.0", "classifier": "9.fc"})


def seed_cnn_plan(image_size: int = 32, num_classes: int = 2, in_chans: int = 3) -> Plan:
    """The seed notebook's Keras CNN: Conv 64 3x3 ReLU, MaxPool, Conv 64 3x3 ReLU, MaxPool, Flatten, Dense 64,
    BatchNorm (Keras eps and momentum), ReLU, Dense."""
    side = ((image_size - 2) // 2 - 2) // 2
    if side < 1:
        raise ValueError(f"seed-cnn needs image_size >= 6, got {image_size}")
    flat = 64 * side * side
    steps = (Step("conv", in_chans, 64, padding=0), Step("relu", 64, 64), _pool(64),
             Step("conv", 64, 64, padding=0), Step("relu", 64, 64), _pool(64), Step("flatten", 64, flat),
             Step("linear", flat, 64), Step("bn1d", 64, 64, eps=1e-3, momentum=0.01), Step("relu", 64, 64),
             Step("linear", 64, out_dim(num_classes)))
    return Plan("seed-cnn", steps, {"features": "3", "classifier": "10"})


PLANS: dict[str, Callable[..., Plan]] = {"fast": fast_plan, "best": best_plan, "wide": wide_plan,
                                         "seed-cnn": seed_cnn_plan}


def plan_for(arch: str, image_size: int = 32, num_classes: int = 2, **arch_kwargs: object) -> Plan:
    """The plan of ``arch`` for a spec's size, class count and ``arch_kwargs`` (ValueError: no plan for it)."""
    if arch not in PLANS:
        raise ValueError(f"no layer plan for architecture {arch!r} (have: {', '.join(PLANS)})")
    return PLANS[arch](image_size=image_size, num_classes=num_classes, **arch_kwargs)
