"""The one model contract: ``Net`` = normalisation + architecture body, described by a ``ModelSpec``.

Input convention (everywhere in fakescope): NCHW batches, either ``uint8`` in [0, 255] or floating point in
[0, 1]. ``Net.forward`` converts uint8 to [0, 1] and normalises with the spec's mean/std, so normalisation lives
only here and nobody divides by 255 twice.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import create_model
from .spec import CIFAR10_CLASSES, TASKS, ModelSpec

__all__ = ["CIFAR10_CLASSES", "TASKS", "ModelSpec", "Net"]



class Net(nn.Module):
    """Normalisation + body. Accepts uint8 [0,255] or float [0,1] NCHW; returns raw logits."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        self.body = create_model(
            spec.arch, image_size=spec.image_size, num_classes=len(spec.classes), **spec.arch_kwargs
        )
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1), False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalise(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Binary: one logit per image (N,); multi-class: (N, C)."""
        out = self(x)
        return out.squeeze(1) if out.shape[1] == 1 else out

    def layer_name(self, role: str) -> str:
        """The dotted name (inside this ``Net``) of the layer playing ``role`` (see ``LAYER_ROLES``)."""
        names = getattr(self.body, "layer_names", {})
        if role not in names:
            raise ValueError(f"architecture {self.spec.arch!r} declares no {role!r} layer "
                             f"(declared: {', '.join(names) or 'none'})")
        return f"body.{names[role]}"

    def layer(self, role: str) -> nn.Module:
        """The layer playing ``role``: ``features`` (Grad-CAM) or ``classifier`` (its input = penultimate features)."""
        return self.get_submodule(self.layer_name(role))
