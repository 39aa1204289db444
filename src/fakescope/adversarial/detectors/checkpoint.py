"""A trained checkpoint of task ``adversarial``, evaluated as it is."""

from __future__ import annotations

import copy
import hashlib
import math
import os

import numpy as np
import torch

from .base import AdversarialDetector, ScoreFn


class CheckpointDetector(AdversarialDetector):
    """A trained fakescope checkpoint of task ``adversarial`` (``fakescope train --task adversarial``), used AS IS.

    Score: its calibrated P(attacked) (the checkpoint's temperature, and its flip TTA when it records one), as
    ``Detector.scores`` and ``fakescope scan`` give it. Threshold: the checkpoint's calibrated one
    (``checkpoint_threshold``) until something sets ``threshold``. It is never refitted: ``fit`` refuses.
    """

    name = "checkpoint"
    trains_on_attacks = False  # never fitted at all

    def __init__(self, path: str | os.PathLike[str], fpr: float = 0.05, device: str = "cpu") -> None:
        from ...inference.scorer import Detector

        super().__init__(fpr)
        self.path = str(path)
        self.model = Detector.load(path, device)
        if self.model.task != "adversarial" or not self.model.net.spec.binary:
            raise ValueError(f"{path}: a {self.model.task} checkpoint; the benchmark needs one of task adversarial "
                             "(fakescope train --task adversarial)")
        self.checkpoint_threshold = float(self.model.threshold)
        self.threshold = self.checkpoint_threshold

    def fit(self, clean: np.ndarray, attacked: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> CheckpointDetector:
        raise RuntimeError(f"{self.path}: a checkpoint detector is evaluated as trained, never refitted")

    def score(self, images: np.ndarray) -> np.ndarray:
        return self.model.scores(images).astype(np.float64)

    def log_odds(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable temperature-scaled logit of float [0, 1] NCHW images: ``score == sigmoid(log_odds)``."""
        net = self.model.net
        z = net.logits(x)
        if self.model.spec.tta:
            z = (z + net.logits(x.flip(3))) / 2
        return z.reshape(len(x)) / net.spec.temperature

    def attack_objective(self) -> tuple[ScoreFn, float]:
        """``log_odds`` against the log-odds of the threshold: the same decision as the calibrated probability,
        without the float32 sigmoid's vanishing gradient on confidently detected images."""
        t = min(max(self.threshold, 1e-12), 1.0 - 1e-12)
        return self.log_odds, math.log(t / (1.0 - t))

    def with_threshold(self, threshold: float) -> CheckpointDetector:
        """A shallow copy (the same loaded model) judging at ``threshold``."""
        other = copy.copy(self)
        other.threshold = float(threshold)
        return other

    def weights_digest(self) -> str:
        """SHA-256 over the loaded parameters and buffers (to show evaluation left them untouched)."""
        h = hashlib.sha256()
        for k, v in sorted(self.model.net.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
