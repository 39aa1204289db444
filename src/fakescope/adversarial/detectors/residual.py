"""A learned input detector: ``srm-cnn`` trained on clean/attacked pairs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ...data.imageset import train_val_split
from ...inference.predict import predict_logits
from ...models.net import Net
from .base import DETECTORS, AdversarialDetector, ScoreFn, paired_imageset, threshold_at_fpr


class ResidualCNN(AdversarialDetector):
    """A learned input detector: ``srm-cnn`` trained with ``fakescope.training.fit`` on clean/attacked pairs.

    The paired ImageSet ties each original to its attacked copy (same group), so fit's train/validation split
    never separates a pair; the threshold is set on fit's clean validation images. ``out`` keeps the run
    (checkpoint ``out/model.json``); by default it goes to a temporary folder, deleted after loading.

    ``negatives=True`` trains as ``fakescope train --augment negatives``: half of the CLEAN training images are
    degraded (JPEG, blur, Gaussian noise, rescale: ``studies.perturb.augment_batch`` through ``training.degrade``),
    attacked images never, so noise alone stops being evidence of an attack.
    """

    name = "residual-cnn"
    trains_on_attacks = True

    def __init__(self, out: str | os.PathLike[str] | None = None, width: int = 16, epochs: int = 8,
                 batch_size: int = 64, lr: float = 2e-3, val_fraction: float = 0.2, seed: int = 0,
                 fpr: float = 0.05, device: str = "auto", threads: int = 0, negatives: bool = False,
                 **train_kw: Any) -> None:
        super().__init__(fpr)
        self.out = out
        self.negatives = negatives
        self.cfg_kw = {"arch": "srm-cnn", "arch_kwargs": {"width": width}, "epochs": epochs, "optimizer": "adam",
                       "lr": lr, "weight_decay": 0.0, "label_smoothing": 0.0, "val_fraction": val_fraction,
                       "seed": seed, "device": device, "threads": threads, "tta": False, "log_every": 0,
                       "batch_size": batch_size, "augment": "negatives" if negatives else "none", **train_kw}
        self.net: Net | None = None
        self.metrics: dict[str, Any] = {}

    def fit(self, clean: np.ndarray, attacked: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> ResidualCNN:
        from ...models.checkpoint import load_checkpoint
        from ...training.config import TrainConfig, validation_seed
        from ...training.loop import fit

        if attacked is None:
            raise ValueError("residual-cnn is trained: pass the attacked copies of the clean images")
        ds = paired_imageset(clean, attacked, groups)
        kw = dict(self.cfg_kw)
        kw["batch_size"] = min(kw["batch_size"], max(1, int(len(ds) * (1 - kw["val_fraction"])) - 2))
        with tempfile.TemporaryDirectory(prefix="fakescope-srm-") as tmp:
            run = Path(self.out) if self.out is not None else Path(tmp)
            cfg = TrainConfig(task="adversarial", image_size=int(clean.shape[1]), out=str(run), **kw)
            self.metrics = fit(cfg, dataset=ds, quiet=True)
            self.net, _ = load_checkpoint(run / "model.json")
        _, val = train_val_split(ds, cfg.val_fraction, validation_seed(cfg.to_dict()))  # the split fit used
        self.threshold = threshold_at_fpr(self.score(val.images[val.labels == 0]), self.fpr)
        return self

    def score(self, images: np.ndarray) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("residual-cnn: call fit() first")
        return predict_logits(self.net, images).astype(np.float64)

    def attack_objective(self) -> tuple[ScoreFn, float] | None:
        """The trained net's logit (``score``, differentiable) and the threshold; ``None`` before ``fit``."""
        if self.net is None:
            return None
        rnet = self.net.eval()
        return (lambda x: rnet.logits(x).reshape(len(x))), self.threshold


@DETECTORS.register("residual-cnn", doc="srm-cnn (fixed SRM residual stem + small CNN) trained on clean/attacked pairs")
def _residual_cnn(victim_net: Net | None = None, **kw: Any) -> AdversarialDetector:
    return ResidualCNN(**kw)  # the victim is not needed: this detector looks at the input only
