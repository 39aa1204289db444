"""Grad-CAM (Selvaraju et al., 2017): channel weights = spatially averaged gradients of the explained score.

The activation of the target layer is captured with a forward hook that is removed as soon as the forward pass
ends (also when it raises). The gradient is taken with ``torch.autograd.grad`` on that activation rather than
with a full backward hook: a full backward hook on a convolution followed by ``ReLU(inplace=True)`` (seed-cnn)
is refused by autograd, and ``autograd.grad`` leaves no ``.grad`` on the parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .common import ImagesLike, TargetLike, as_input, explaining, normalise_maps, target_scores


def default_target_layer(net: nn.Module) -> nn.Module:
    """The layer a fakescope ``Net`` declares as its ``features`` (``Net.layer``); for any other module, its last
    ``nn.Conv2d`` in registration order."""
    if callable(getattr(net, "layer", None)):
        return net.layer("features")
    root = net
    convs = [m for m in root.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(net).__name__} has no Conv2d layer to explain; pass target_layer explicitly")
    return convs[-1]


def grad_cam(net: nn.Module, images: ImagesLike, target_layer: nn.Module | None = None,
             target: TargetLike = 1) -> np.ndarray:
    """Grad-CAM heat maps, (N, H, W) float32 in [0, 1] at the input's size (bilinear upsampling).

    ``target``: for binary nets 1 explains the label-1 logit and 0 its negation; for multi-class nets the class
    index. An int applies to every image, a sequence gives one target per image.
    """
    layer = target_layer if target_layer is not None else default_target_layer(net)
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: Any, output: Any) -> torch.Tensor:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise TypeError(f"Grad-CAM target layer must output an NCHW tensor, got {type(output).__name__}")
        captured.append(output)
        return output.clone()  # later in-place ops (ReLU(inplace=True)) must not touch the captured activation

    with explaining(net):
        x = as_input(net, images).requires_grad_(True)
        handle = layer.register_forward_hook(hook)
        try:
            scores = target_scores(net, x, target)
        finally:
            handle.remove()
        if not captured:
            raise ValueError("the Grad-CAM target layer was not used in the forward pass")
        acts = captured[-1]
        (grads,) = torch.autograd.grad(scores.sum(), acts, allow_unused=True)
    if grads is None:
        grads = torch.zeros_like(acts)
    with torch.no_grad():
        acts, grads = acts.detach().float(), grads.float()
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * acts).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    return normalise_maps(cam[:, 0])
