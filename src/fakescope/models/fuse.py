"""Inference-time folding of BatchNorm into the preceding convolution or linear layer.

Mathematically the same function (up to float rounding); one fewer pass over every activation map. Applied to
a copy, so the original (trainable) model is untouched.

The rule (structural, no guessing by position or architecture): inside every ``nn.Sequential`` of the model, at
any depth, a ``Conv2d`` immediately followed by a ``BatchNorm2d`` of its output channels, or a ``Linear``
immediately followed by a ``BatchNorm1d`` of its output features, becomes one layer; the BatchNorm's slot becomes
``nn.Identity``, so indices and the declared layer names (``models.layers``) still resolve. A BatchNorm anywhere
else (after another kind of layer, or applied inside a custom ``forward``) is left as it is. The layer plans of
``models.layout`` (``cbg``, ``res``, ``linear`` + ``bn1d``) always produce such adjacent pairs.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from .net import Net


def _foldable(a: nn.Module, b: nn.Module) -> bool:
    """Whether ``b`` is a BatchNorm of ``a``'s output, to be folded into ``a`` (see the module docstring)."""
    if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
        return a.out_channels == b.num_features
    if isinstance(a, nn.Linear) and isinstance(b, nn.BatchNorm1d):
        return a.out_features == b.num_features
    return False


def foldable_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """The (layer, BatchNorm) name pairs inside ``module`` that ``fuse_for_inference`` folds, in module order."""
    pairs = []
    for prefix, m in module.named_modules():
        if isinstance(m, nn.Sequential):
            names = list(m._modules)
            for a, b in zip(names[:-1], names[1:], strict=True):
                if _foldable(m._modules[a], m._modules[b]):
                    pairs.append((f"{prefix}.{a}" if prefix else a, f"{prefix}.{b}" if prefix else b))
    return pairs


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent), child, new)


def fuse_for_inference(net: Net) -> Net:
    """An eval-mode copy of ``net`` with every Conv/Linear → BatchNorm pair (``foldable_pairs``) folded into one
    layer."""
    fused = copy.deepcopy(net).eval()
    for a, b in foldable_pairs(fused):
        layer, bn = fused.get_submodule(a), fused.get_submodule(b)
        folded = fuse_conv_bn_eval(layer, bn) if isinstance(layer, nn.Conv2d) else fuse_linear_bn_eval(layer, bn)
        _replace(fused, a, folded)
        _replace(fused, b, nn.Identity())
    return fused
