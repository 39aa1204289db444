"""Architectures. Each factory returns a body that maps a normalised float NCHW batch to logits.

All bodies work at any input size (``image_size``); binary tasks use one logit (label 1 = the thing we detect).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import declare_layers
from .registry import register_model


def _out_dim(num_classes: int) -> int:
    return 1 if num_classes <= 2 else num_classes


@register_model("seed-cnn", doc="The seed notebook's Keras CNN, layer for layer (Adam 1e-3, BCE).")
def seed_cnn(image_size: int = 32, num_classes: int = 2, in_chans: int = 3) -> nn.Module:
    """Conv2D 64 3x3 ReLU, MaxPool, Conv2D 64 3x3 ReLU, MaxPool, Flatten, Dense 64, BatchNorm, ReLU, Dense 1."""
    side = ((image_size - 2) // 2 - 2) // 2
    if side < 1:
        raise ValueError(f"seed-cnn needs image_size >= 6, got {image_size}")
    body = nn.Sequential(
        nn.Conv2d(in_chans, 64, 3),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 64),
        nn.BatchNorm1d(64, eps=1e-3, momentum=0.01),  # Keras defaults
        nn.ReLU(inplace=True),
        nn.Linear(64, _out_dim(num_classes)),
    )
    return declare_layers(body, features="3", classifier="10")


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU())


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = conv_bn(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Head(nn.Module):
    """Global max + average pooling, then a linear layer (keeps the body size-agnostic)."""

    def __init__(self, channels: int, out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(2 * channels, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1))


@register_model("fast", doc="4 conv-BN-GELU stages, first at full resolution; ~15 MFLOPs at 32x32 (seed-cnn: ~16).")
def fast(image_size: int = 32, num_classes: int = 2, in_chans: int = 3, width: int = 24) -> nn.Module:
    w = width
    body = nn.Sequential(
        conv_bn(in_chans, w),
        nn.MaxPool2d(2),
        conv_bn(w, 2 * w),
        nn.MaxPool2d(2),
        conv_bn(2 * w, 4 * w),
        nn.MaxPool2d(2),
        conv_bn(4 * w, 4 * w),
        Head(4 * w, _out_dim(num_classes)),
    )
    return declare_layers(body, features="6.0", classifier="7.fc")


@register_model("best", doc="Residual CNN, two convs at full resolution for high-frequency cues; ~285 MFLOPs at 32x32.")
def best(image_size: int = 32, num_classes: int = 2, in_chans: int = 3, width: int = 32) -> nn.Module:
    w = width
    body = nn.Sequential(
        conv_bn(in_chans, w),
        conv_bn(w, 2 * w),
        nn.MaxPool2d(2),
        conv_bn(2 * w, 4 * w),
        Residual(4 * w),
        nn.MaxPool2d(2),
        conv_bn(4 * w, 8 * w),
        Residual(8 * w),
        nn.MaxPool2d(2),
        conv_bn(8 * w, 8 * w),
        Head(8 * w, _out_dim(num_classes)),
    )
    return declare_layers(body, features="9.0", classifier="10.fc")
