"""``guarded``: an adversarial-image detector that pairs a residual CNN with the victim's own decision margin.

Two kinds of attack leave two kinds of trace:

- fixed-budget attacks (FGSM, BIM, PGD at 2/255 and up) add dense, sign-like high-frequency noise, which a
  high-pass residual CNN (``srm-cnn``) sees even at 2 grey levels;
- minimal-perturbation attacks (DeepFool, C&W) add so little that a residual detector confuses them with sensor
  noise, but by construction they stop just across the victim's decision boundary: the gap between the victim's
  two largest logits is tiny, while clean and merely noisy images sit far from any boundary.

``guarded`` scores both: ``z_r`` = the residual CNN's logit and ``z_m`` = -log(top-1 minus top-2 victim logit),
each standardised by its mean and spread on CLEAN validation images (buffers ``center`` and ``scale``), and
returns their smooth maximum ``logsumexp(k·z) / k`` minus ``offset`` as one logit (with the checkpoint's
temperature, ``offset`` makes it a Platt-calibrated log-odds). It is one differentiable network, so
calibration, Grad-CAM (on the residual branch, the last convolution), serving and adaptive attacks treat it like
any other detector. Built from two trained checkpoints by ``fakescope guard``; training it from scratch is
possible but pointless.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .layers import declare_layers
from .registry import create_model, register_model

DEFAULT_RESIDUAL: dict[str, Any] = {"arch": "srm-cnn", "width": 16}
DEFAULT_VICTIM: dict[str, Any] = {"arch": "best", "width": 16, "num_classes": 10}


class Guarded(nn.Module):
    """Victim body + residual body (normalised input in, one logit out); see the module docstring."""

    def __init__(self, residual: dict[str, Any], victim: dict[str, Any], image_size: int = 32,
                 in_chans: int = 3, sharpness: float = 2.0, margin_floor: float = 1e-3) -> None:
        super().__init__()
        v, r = dict(victim), dict(residual)
        v_arch, v_classes = v.pop("arch"), int(v.pop("num_classes", 10))
        if v_classes < 3:
            raise ValueError(f"guarded: the victim must be a classifier with >= 3 classes, got {v_classes}")
        self.victim = create_model(v_arch, image_size=image_size, num_classes=v_classes, in_chans=in_chans, **v)
        self.residual = create_model(r.pop("arch"), image_size=image_size, num_classes=2, in_chans=in_chans, **r)
        self.sharpness, self.margin_floor = float(sharpness), float(margin_floor)
        self.register_buffer("center", torch.zeros(2))
        self.register_buffer("scale", torch.ones(2))
        self.register_buffer("offset", torch.zeros(1))
        features = getattr(self.residual, "layer_names", {}).get("features")
        if features is not None:  # Grad-CAM explains the residual branch (the victim's margin has no map)
            declare_layers(self, features=f"residual.{features}")

    def components(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2): the residual logit and -log(victim margin), before standardisation."""
        r = self.residual(x)[:, 0].float()
        top2 = self.victim(x).float().topk(2, dim=1).values
        m = -torch.log(top2[:, 0] - top2[:, 1] + self.margin_floor)
        return torch.stack([r, m], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.components(x) - self.center) / self.scale
        k = self.sharpness
        return torch.logsumexp(k * z, dim=1, keepdim=True) / k - self.offset


@register_model("guarded", doc="Residual CNN + victim decision margin (DeepFool/C&W); assembled by fakescope guard.",
                tags=("binary-only", "composite"))
def guarded(image_size: int = 32, num_classes: int = 2, in_chans: int = 3, residual: dict[str, Any] | None = None,
            victim: dict[str, Any] | None = None, sharpness: float = 2.0, margin_floor: float = 1e-3) -> nn.Module:
    """``Guarded`` with the given sub-architectures (dicts: ``arch`` plus its kwargs; the victim's ``num_classes``)."""
    if num_classes != 2:
        raise ValueError(f"guarded is a binary detector (clean vs attacked), got {num_classes} classes")
    return Guarded(residual or DEFAULT_RESIDUAL, victim or DEFAULT_VICTIM, image_size, in_chans, sharpness,
                   margin_floor)


def residual_part(net: Any) -> Any:
    """The residual CNN inside a guarded ``Net``, as a detector ``Net`` of its own: the same input spec and task,
    its own default temperature and threshold (``fakescope guard`` and ``train --init`` reuse it)."""
    from .net import Net
    from .spec import ModelSpec

    s = net.spec
    if s.arch != "guarded":
        raise ValueError(f"residual_part: a {s.arch} model, not a guarded one")
    r = dict(s.arch_kwargs.get("residual") or DEFAULT_RESIDUAL)
    spec = ModelSpec(arch=r.pop("arch"), task=s.task, classes=list(s.classes), image_size=s.image_size,
                     mean=list(s.mean), std=list(s.std), resample=s.resample, arch_kwargs=r)
    out = Net(spec)
    out.body.load_state_dict(net.body.residual.state_dict())
    return out.eval()
