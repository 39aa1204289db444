"""``ensemble``: the mean of several trained models' temperature-scaled logits, as one network.

Members share the input contract (size, normalisation, classes); each member's logits are multiplied by its own
``1 / temperature`` (buffer ``scales``) so a confident member does not outvote a calibrated one, then averaged.
Built from checkpoints by ``fakescope ensemble``, which then calibrates the whole on validation data like any model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .layers import declare_layers
from .registry import create_model, register_model

DEFAULT_MEMBERS: list[dict[str, Any]] = [{"arch": "fast", "width": 8}, {"arch": "fast", "width": 8}]


class Ensemble(nn.Module):
    """Average of the members' scaled logits; ``members`` are dicts: ``arch`` plus its kwargs."""

    def __init__(self, members: list[dict[str, Any]], image_size: int = 32, num_classes: int = 2,
                 in_chans: int = 3) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        bodies = []
        for m in members:
            kw = dict(m)
            bodies.append(create_model(kw.pop("arch"), image_size=image_size, num_classes=num_classes,
                                       in_chans=in_chans, **kw))
        self.members = nn.ModuleList(bodies)
        self.register_buffer("scales", torch.ones(len(members)))
        features = getattr(bodies[-1], "layer_names", {}).get("features")
        if features is not None:  # Grad-CAM explains the last member
            declare_layers(self, features=f"members.{len(bodies) - 1}.{features}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.members[0](x) * self.scales[0]
        for body, s in zip(self.members[1:], self.scales[1:], strict=True):
            out = out + body(x) * s
        return out / len(self.members)


@register_model("ensemble", doc="Mean of trained models' temperature-scaled logits; assembled by fakescope ensemble.",
                tags=("composite",))
def ensemble(image_size: int = 32, num_classes: int = 2, in_chans: int = 3,
             members: list[dict[str, Any]] | None = None) -> nn.Module:
    """``Ensemble`` of ``members`` (default: two small ``fast`` bodies, for tests)."""
    return Ensemble(members or DEFAULT_MEMBERS, image_size, num_classes, in_chans)
