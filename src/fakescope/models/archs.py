"""Architectures. Each factory returns a body that maps a normalised float NCHW batch to logits.

``fast``, ``best`` and ``seed-cnn`` are built from their layer plan (``models.layout``, the description the ONNX
engine builds its graphs from too): ``nn.Sequential`` index ``i`` is plan step ``i``. All bodies work at any input
size (``image_size``); binary tasks use one logit (label 1 = the thing we detect).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .layers import declare_layers
from .layout import Plan, Step, best_plan, fast_plan, seed_cnn_plan, wide_plan
from .registry import register_model


def conv_bn(cin: int, cout: int, kernel: int = 3, padding: int = 1, eps: float = 1e-5,
            momentum: float = 0.1) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm2d -> GELU: the ``cbg`` step."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=padding, bias=False),
                         nn.BatchNorm2d(cout, eps=eps, momentum=momentum), nn.GELU())


class Residual(nn.Module):
    """``x + conv_bn(x)``: the ``res`` step (``options``: ``conv_bn``'s kernel, padding, eps, momentum)."""

    def __init__(self, channels: int, **options: float) -> None:
        super().__init__()
        self.body = conv_bn(channels, channels, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Head(nn.Module):
    """Global max + average pooling, then a linear layer (keeps the body size-agnostic)."""

    def __init__(self, channels: int, out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(2 * channels, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1))


# One torch constructor per plan step kind (``layout.KINDS``).
MODULES: dict[str, Callable[[Step], nn.Module]] = {
    "cbg": lambda s: conv_bn(s.cin, s.cout, s.kernel, s.padding, s.eps, s.momentum),
    "res": lambda s: Residual(s.cin, kernel=s.kernel, padding=s.padding, eps=s.eps, momentum=s.momentum),
    "conv": lambda s: nn.Conv2d(s.cin, s.cout, s.kernel, padding=s.padding),
    "relu": lambda s: nn.ReLU(inplace=True),
    "pool": lambda s: nn.MaxPool2d(2),
    "flatten": lambda s: nn.Flatten(),
    "linear": lambda s: nn.Linear(s.cin, s.cout),
    "bn1d": lambda s: nn.BatchNorm1d(s.cin, eps=s.eps, momentum=s.momentum),
    "head": lambda s: Head(s.cin, s.cout),
}


def build(plan: Plan) -> nn.Module:
    """The ``nn.Sequential`` of ``plan`` (module ``i`` = step ``i``) with the plan's named layers declared."""
    return declare_layers(nn.Sequential(*(MODULES[s.kind](s) for s in plan.steps)), **plan.layer_names)


@register_model("seed-cnn", doc="The seed notebook's Keras CNN, layer for layer (Adam 1e-3, BCE).")
def seed_cnn(image_size: int = 32, num_classes: int = 2, in_chans: int = 3) -> nn.Module:
    """Conv2D 64 3x3 ReLU, MaxPool, Conv2D 64 3x3 ReLU, MaxPool, Flatten, Dense 64, BatchNorm, ReLU, Dense 1."""
    return build(seed_cnn_plan(image_size, num_classes, in_chans))


@register_model("fast", doc="4 conv-BN-GELU stages, first at full resolution; ~15 MFLOPs at 32x32 (seed-cnn: ~16).")
def fast(image_size: int = 32, num_classes: int = 2, in_chans: int = 3, width: int = 24) -> nn.Module:
    return build(fast_plan(image_size, num_classes, in_chans, width))


@register_model("best", doc="Residual CNN, two convs at full resolution for high-frequency cues; ~285 MFLOPs at 32x32.")
def best(image_size: int = 32, num_classes: int = 2, in_chans: int = 3, width: int = 32) -> nn.Module:
    return build(best_plan(image_size, num_classes, in_chans, width))


@register_model("wide", doc="airbench-shaped CNN: groups of 64/256/256 channels at 1/2, 1/4, 1/8 size (the victim).")
def wide(image_size: int = 32, num_classes: int = 2, in_chans: int = 3, width: int = 64) -> nn.Module:
    return build(wide_plan(image_size, num_classes, in_chans, width))
