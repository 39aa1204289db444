"""The adversarial-detector contract: ``fit / score / detect`` behind one registry.

``score`` is higher for images more likely attacked; ``detect`` compares it with a threshold set at a target
false-positive rate (default 5%) on clean VALIDATION images. Images are uint8 NHWC throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from ...data.imageset import ImageSet
from ...inference.calibration import threshold_at_fpr as threshold_at_fpr  # re-exported: the detectors' threshold
from ...registry import Registry

ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # float [0, 1] NCHW images → (N,) differentiable scores


def paired_imageset(clean: np.ndarray, attacked: np.ndarray, groups: np.ndarray | None = None) -> ImageSet:
    """Label 0 clean, 1 attacked; ``attacked[i]`` is the copy of ``clean[i]`` and shares its group.

    ``groups`` (one source id per clean image, default ``arange``) ties pairs, so a group-aware split
    (``train_val_split``) never separates an original from its attacked copy.
    """
    if len(clean) != len(attacked):
        raise ValueError(f"{len(clean)} clean vs {len(attacked)} attacked images: pairs must align one to one")
    g = np.arange(len(clean), dtype=np.int64) if groups is None else np.asarray(groups, np.int64)
    if len(g) != len(clean):
        raise ValueError(f"{len(g)} groups for {len(clean)} pairs")
    n = len(clean)
    return ImageSet(np.concatenate([clean, attacked]), np.r_[np.zeros(n, np.int64), np.ones(n, np.int64)],
                    ["clean", "attacked"], groups=np.concatenate([g, g]))


class AdversarialDetector:
    """Base class: subclasses implement ``fit`` (which must set ``threshold``) and ``score``, and declare what they
    can do: ``trains_on_attacks`` (``fit`` needs attacked copies; the benchmark fits one per training attack) and
    ``attack_objective`` (what an adaptive attack can differentiate; ``None``: nothing)."""

    name = ""
    trains_on_attacks: bool = False

    def __init__(self, fpr: float = 0.05) -> None:
        self.fpr = fpr
        self.threshold = float("nan")

    def fit(self, clean: np.ndarray, attacked: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> AdversarialDetector:
        raise NotImplementedError

    def score(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def attack_objective(self) -> tuple[ScoreFn, float] | None:
        """(torch score function, threshold): float [0, 1] NCHW images → per-image values that the detector flags
        above the threshold, differentiable, with the same decisions as ``detect``; ``None`` when the score is not
        differentiable or the detector is not fitted (then no gradient-based adaptive attack applies)."""
        return None

    def detect(self, images: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Boolean per image: score above ``threshold`` (default: the one fitted at the target FPR)."""
        t = self.threshold if threshold is None else threshold
        if t != t:
            raise RuntimeError(f"{self.name}: call fit() first (no threshold)")
        return self.score(images) > t

    def evaluate(self, clean: np.ndarray, attacked: np.ndarray) -> dict[str, float]:
        """AUROC, and TPR / FPR at the fitted threshold, on held-out clean and attacked images."""
        sc, sa = self.score(clean), self.score(attacked)
        y = np.r_[np.zeros(len(sc)), np.ones(len(sa))]
        return {"auroc": float(roc_auc_score(y, np.r_[sc, sa])), "tpr": float((sa > self.threshold).mean()),
                "fpr": float((sc > self.threshold).mean()), "threshold": self.threshold}


DETECTORS: Registry[AdversarialDetector] = Registry("detector")


def create_detector(name: str, **kw: Any) -> AdversarialDetector:
    """Create detector ``name``. Every factory accepts ``victim_net=``, ``fpr=`` and ``seed=`` (ignored where
    meaningless: residual-cnn needs no victim, feature squeezing draws nothing at random); victim-based ones
    need ``victim_net``."""
    return DETECTORS.create(name, **kw)


def list_detectors() -> list[str]:
    return DETECTORS.names()


def _batches(images: np.ndarray, batch_size: int = 512) -> Iterator[np.ndarray]:
    for i in range(0, len(images), batch_size):
        yield images[i:i + batch_size]
