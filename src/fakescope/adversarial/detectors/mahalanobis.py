"""Mahalanobis distance of the victim's penultimate features (Lee et al. 2018)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.covariance import LedoitWolf

from ...data.imageset import ImageSet, train_val_split
from ...inference.predict import predict_logits
from ...models.net import Net
from ..attacks.stats import predict
from .base import DETECTORS, AdversarialDetector, ScoreFn, threshold_at_fpr


class Mahalanobis(AdversarialDetector):
    """Lee et al. 2018 (one layer): class-conditional Gaussians with a tied, Ledoit-Wolf-shrunk covariance on the
    victim's penultimate features (the input of its last ``nn.Linear``); score = min Mahalanobis distance.

    Fitted on clean images only (classes = the victim's predictions unless ``labels`` are given); the threshold is
    set on a group-aware clean validation split.
    """

    name = "mahalanobis"
    trains_on_attacks = False

    def __init__(self, victim_net: Net, layer: str | None = None, val_fraction: float = 0.2, seed: int = 0,
                 fpr: float = 0.05) -> None:
        super().__init__(fpr)
        self.net = victim_net.eval()
        self.layer = layer or victim_net.layer_name("classifier")
        self.val_fraction, self.seed = val_fraction, seed
        self.means = np.zeros((0, 0))
        self.precision = np.zeros((0, 0))

    @torch.no_grad()
    def features(self, images: np.ndarray) -> np.ndarray:
        """Penultimate features (the hooked layer's input), float64 (N, D); the hook is removed afterwards."""
        grabbed: list[torch.Tensor] = []
        module = dict(self.net.named_modules())[self.layer]
        handle = module.register_forward_pre_hook(lambda _m, args: grabbed.append(args[0].flatten(1).float().cpu()))
        try:
            predict_logits(self.net, images)
        finally:
            handle.remove()
        return torch.cat(grabbed).double().numpy() if grabbed else np.zeros((0, 0))

    def fit(self, clean: np.ndarray, attacked: np.ndarray | None = None, groups: np.ndarray | None = None,
            labels: np.ndarray | None = None) -> Mahalanobis:
        y = predict(self.net, clean) if labels is None else np.asarray(labels, np.int64)
        ds = ImageSet(clean, y, list(self.net.spec.classes), groups=np.asarray(groups, np.int64)
                      if groups is not None else np.zeros(0, np.int64))
        train, val = train_val_split(ds, self.val_fraction, self.seed)
        f = self.features(train.images)
        present = np.unique(train.labels)
        self.means = np.stack([f[train.labels == k].mean(0) for k in present])
        centred = f - self.means[np.searchsorted(present, train.labels)]
        self.precision = LedoitWolf(assume_centered=True).fit(centred).precision_
        self.threshold = threshold_at_fpr(self.score(val.images), self.fpr)
        return self

    def score(self, images: np.ndarray) -> np.ndarray:
        f = self.features(images)
        d = f[:, None, :] - self.means[None]  # (N, K, D)
        return np.einsum("nkd,de,nke->nk", d, self.precision, d).min(axis=1)

    def attack_objective(self) -> tuple[ScoreFn, float] | None:
        """``score`` in torch (the hooked layer's input, float64 distances) and the threshold; ``None`` before
        ``fit``."""
        if not self.means.size:
            return None
        module = dict(self.net.named_modules())[self.layer]
        mu, prec = torch.from_numpy(self.means), torch.from_numpy(self.precision)

        def distance(x: torch.Tensor) -> torch.Tensor:
            grabbed: list[torch.Tensor] = []
            handle = module.register_forward_pre_hook(lambda _m, args: grabbed.append(args[0].flatten(1)))
            try:
                self.net.eval()(x)
            finally:
                handle.remove()
            d = grabbed[0].double()[:, None, :] - mu.to(x.device)[None]
            return torch.einsum("nkd,de,nke->nk", d, prec.to(x.device), d).min(1).values

        return distance, self.threshold


@DETECTORS.register("mahalanobis", doc="Min Mahalanobis distance of the victim's penultimate features (tied cov.).")
def _mahalanobis(victim_net: Net, layer: str | None = None, val_fraction: float = 0.2, seed: int = 0,
                 fpr: float = 0.05) -> AdversarialDetector:
    return Mahalanobis(victim_net, layer=layer, val_fraction=val_fraction, seed=seed, fpr=fpr)
