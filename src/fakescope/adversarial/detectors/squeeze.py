"""Feature squeezing (Xu et al. 2018)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...inference.predict import to_tensor
from ...models.net import Net
from ..attacks.base import VictimLogits
from .base import DETECTORS, AdversarialDetector, _batches, threshold_at_fpr


class FeatureSqueezing(AdversarialDetector):
    """Xu et al. 2018: max L1 distance between the victim's softmax on x and on squeezed x (no training).

    Squeezers: bit depth reduced to ``bits`` bits, and a 2x2 median filter (mean of the middle two of four).
    Not differentiable (rounding, medians): ``attack_objective`` is ``None``, an adaptive attack would need BPDA.
    """

    name = "feature-squeeze"
    trains_on_attacks = False

    def __init__(self, victim_net: Net, bits: int = 5, fpr: float = 0.05) -> None:
        super().__init__(fpr)
        self.model = VictimLogits(victim_net.eval())
        self.device = next(victim_net.parameters()).device
        self.bits = bits

    @staticmethod
    def median2x2(x: torch.Tensor) -> torch.Tensor:
        p = F.pad(x, (0, 1, 0, 1), mode="replicate")
        v = torch.stack([p[..., :-1, :-1], p[..., :-1, 1:], p[..., 1:, :-1], p[..., 1:, 1:]]).sort(dim=0).values
        return (v[1] + v[2]) / 2

    @torch.no_grad()
    def score(self, images: np.ndarray) -> np.ndarray:
        out = []
        levels = 2**self.bits - 1
        for b in _batches(images):
            x = to_tensor(b, self.device).float() / 255.0
            p = torch.softmax(self.model(x), 1)
            d = [(torch.softmax(self.model(s), 1) - p).abs().sum(1)
                 for s in (torch.round(x * levels) / levels, self.median2x2(x))]
            out.append(torch.maximum(*d).cpu())
        return torch.cat(out).numpy() if out else np.zeros(0)

    def fit(self, clean: np.ndarray, attacked: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> FeatureSqueezing:
        """No training: the threshold is the clean-score quantile at the target FPR (``attacked`` is unused)."""
        self.threshold = threshold_at_fpr(self.score(clean), self.fpr)
        return self


@DETECTORS.register("feature-squeeze", doc="Victim softmax change under bit-depth reduction / 2x2 median (untrained).")
def _feature_squeeze(victim_net: Net, bits: int = 5, fpr: float = 0.05, seed: int = 0) -> AdversarialDetector:
    return FeatureSqueezing(victim_net, bits=bits, fpr=fpr)  # no randomness: seed is accepted and unused
