"""Integrated Gradients (Sundararajan et al., 2017) and the explainer registry.

An explainer is a callable ``(net, images, target) -> (N, H, W) float32 in [0, 1]``; ``EXPLAINERS.create(name,
**options)`` builds one, ``explain_images`` runs one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..registry import Registry
from .common import ImagesLike, TargetLike, as_input, explaining, normalise_maps, target_scores, targets_for
from .gradcam import grad_cam

Explainer = Callable[[nn.Module, ImagesLike, TargetLike], np.ndarray]
EXPLAINERS: Registry[Explainer] = Registry("explainer")
BASELINES = {"black": 0.0, "gray": 0.5, "white": 1.0}


def _baseline(x: torch.Tensor, baseline: str | float) -> torch.Tensor:
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline {baseline!r}; choose one of: {', '.join(BASELINES)} or a number")
        baseline = BASELINES[baseline]
    return torch.full_like(x, float(baseline))


def ig_attributions(net: nn.Module, images: ImagesLike, target: TargetLike = 1, steps: int = 32,
                    baseline: str | float = "black") -> torch.Tensor:
    """Signed Integrated Gradients, (N, C, H, W) in input space ([0, 1] pixels); midpoint Riemann sum.

    Each image's ``steps`` interpolation points go through the model as one batch. Completeness: the sum over an
    image is close to ``score(image) - score(baseline)``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    with explaining(net):
        x = as_input(net, images)
        base = _baseline(x, baseline)
        t = targets_for(target, x.shape[0], x.device)
        alphas = ((torch.arange(steps, device=x.device, dtype=torch.float32) + 0.5) / steps).view(-1, 1, 1, 1)
        out = torch.empty_like(x)
        for i in range(x.shape[0]):
            delta = x[i] - base[i]
            path = (base[i] + alphas * delta).requires_grad_(True)
            scores = target_scores(net, path, t[i].expand(steps))
            (grads,) = torch.autograd.grad(scores.sum(), path, allow_unused=True)
            out[i] = 0.0 if grads is None else delta * grads.mean(dim=0)
    return out.detach()


def integrated_gradients(net: nn.Module, images: ImagesLike, target: TargetLike = 1, steps: int = 32,
                         baseline: str | float = "black", percentile: float | None = 99.0) -> np.ndarray:
    """Integrated Gradients heat maps, (N, H, W) float32 in [0, 1]: |attribution| summed over channels.

    Each map is divided by its ``percentile``-th value (then clipped) so a few extreme pixels do not hide the
    rest; ``percentile=None`` divides by the maximum.
    """
    attr = ig_attributions(net, images, target, steps, baseline)
    return normalise_maps(attr.abs().sum(dim=1), percentile)


@EXPLAINERS.register("gradcam", doc="Grad-CAM on the last convolution: coarse, class-discriminative regions.")
def _gradcam(target_layer: nn.Module | None = None) -> Explainer:
    def run(net: nn.Module, images: ImagesLike, target: TargetLike = 1) -> np.ndarray:
        return grad_cam(net, images, target_layer, target)

    return run


@EXPLAINERS.register("integrated-gradients", doc="Integrated Gradients from a black image: pixel-level evidence.")
def _integrated_gradients(steps: int = 32, baseline: str | float = "black",
                          percentile: float | None = 99.0) -> Explainer:
    def run(net: nn.Module, images: ImagesLike, target: TargetLike = 1) -> np.ndarray:
        return integrated_gradients(net, images, target, steps, baseline, percentile)

    return run


def create_explainer(name: str, **options: Any) -> Explainer:
    """Build an explainer by registry name (see ``list_explainers()``)."""
    return EXPLAINERS.create(name, **options)


def list_explainers() -> list[str]:
    return EXPLAINERS.names()


def explain_images(net: nn.Module, images: ImagesLike, method: str = "gradcam", target: TargetLike = 1,
                   **options: Any) -> np.ndarray:
    """Run the explainer ``method`` on a batch: (N, H, W) float32 heat maps in [0, 1]."""
    return create_explainer(method, **options)(net, images, target)
