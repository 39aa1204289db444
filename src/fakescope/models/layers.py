"""Named layers: an architecture says which of its sub-modules play which role, so nobody guesses by position."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

# The named layers an architecture declares (sub-module names inside its body):
#   features   - the last spatial feature map (Grad-CAM's default layer);
#   classifier - the final linear layer; its INPUT is the penultimate feature vector (Mahalanobis).
# Every architecture declares ``features``; every one but the composites (registry tag ``composite``: ensemble,
# guarded, whose logit is not one linear layer's output) declares ``classifier`` too.
LAYER_ROLES = ("features", "classifier")


def declare_layers(body: nn.Module, **names: str) -> nn.Module:
    """Record which sub-modules of ``body`` play the roles in ``LAYER_ROLES`` (e.g. ``features="7.0"``)."""
    unknown = set(names) - set(LAYER_ROLES)
    if unknown:
        raise ValueError(f"unknown layer roles {sorted(unknown)}; known: {', '.join(LAYER_ROLES)}")
    for name in names.values():
        body.get_submodule(name)  # fails now, not at explanation time, if the name is wrong
    body.layer_names = dict(names)
    return body
