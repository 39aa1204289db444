"""Adversarial-image detectors: one ``fit / score / detect`` API behind a registry.

``score`` is higher for images more likely attacked; ``detect`` compares it with a threshold set at a target
false-positive rate (default 5%) on clean VALIDATION images (never on the images a detector was trained on).
Images are uint8 NHWC throughout.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score
from torch import nn

from ..data.sources import ImageSet
from ..data.split import train_val_split
from ..infer import predict_logits, to_tensor
from ..models.net import Net
from ..registry import Registry
from .attacks import VictimLogits, predict


def threshold_at_fpr(clean_scores: np.ndarray, fpr: float = 0.05) -> float:
    """The smallest observed clean score with at most ``fpr`` of ``clean_scores`` strictly above it."""
    s = np.sort(np.asarray(clean_scores, np.float64))
    if not len(s):
        raise ValueError("no clean scores to set a threshold on")
    k = int(np.floor(fpr * len(s) + 1e-9))
    return float(s[max(0, len(s) - 1 - k)])


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
    """Base class: subclasses implement ``fit`` (which must set ``threshold``) and ``score``."""

    name = ""

    def __init__(self, fpr: float = 0.05) -> None:
        self.fpr = fpr
        self.threshold = float("nan")

    def fit(self, clean: np.ndarray, attacked: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> AdversarialDetector:
        raise NotImplementedError

    def score(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

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
    """Create detector ``name``; victim-based ones need ``victim_net=``, all accept ``fpr=``."""
    return DETECTORS.create(name, **kw)


def list_detectors() -> list[str]:
    return DETECTORS.names()


def _batches(images: np.ndarray, batch_size: int = 512) -> Iterator[np.ndarray]:
    for i in range(0, len(images), batch_size):
        yield images[i:i + batch_size]


class FeatureSqueezing(AdversarialDetector):
    """Xu et al. 2018: max L1 distance between the victim's softmax on x and on squeezed x (no training).

    Squeezers: bit depth reduced to ``bits`` bits, and a 2x2 median filter (mean of the middle two of four).
    """

    name = "feature-squeeze"

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


class Mahalanobis(AdversarialDetector):
    """Lee et al. 2018 (one layer): class-conditional Gaussians with a tied, Ledoit-Wolf-shrunk covariance on the
    victim's penultimate features (the input of its last ``nn.Linear``); score = min Mahalanobis distance.

    Fitted on clean images only (classes = the victim's predictions unless ``labels`` are given); the threshold is
    set on a group-aware clean validation split.
    """

    name = "mahalanobis"

    def __init__(self, victim_net: Net, layer: str | None = None, val_fraction: float = 0.2, seed: int = 0,
                 fpr: float = 0.05) -> None:
        super().__init__(fpr)
        self.net = victim_net.eval()
        self.layer = layer or [n for n, m in victim_net.named_modules() if isinstance(m, nn.Linear)][-1]
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


class ResidualCNN(AdversarialDetector):
    """A learned input detector: ``srm-cnn`` trained with ``fakescope.training.fit`` on clean/attacked pairs.

    The paired ImageSet ties each original to its attacked copy (same group), so fit's train/validation split
    never separates a pair; the threshold is set on fit's clean validation images. ``out`` keeps the run
    (checkpoint ``out/model.json``); by default it goes to a temporary folder, deleted after loading.

    ``negatives=True`` trains as ``fakescope train --augment negatives``: half of the CLEAN training images are
    degraded (JPEG, blur, Gaussian noise, rescale: ``studies.perturb.augment_batch`` through ``training._robust``),
    attacked images never, so noise alone stops being evidence of an attack.
    """

    name = "residual-cnn"

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
        from ..config import TrainConfig
        from ..models.checkpoint import load_checkpoint
        from ..training import fit

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
        _, val = train_val_split(ds, cfg.val_fraction, cfg.seed)  # the split fit used
        self.threshold = threshold_at_fpr(self.score(val.images[val.labels == 0]), self.fpr)
        return self

    def score(self, images: np.ndarray) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("residual-cnn: call fit() first")
        return predict_logits(self.net, images).astype(np.float64)


class CheckpointDetector(AdversarialDetector):
    """A trained fakescope checkpoint of task ``adversarial`` (``fakescope train --task adversarial``), used AS IS.

    Score: its calibrated P(attacked) (the checkpoint's temperature, and its flip TTA when it records one), as
    ``Detector.scores`` and ``fakescope scan`` give it. Threshold: the checkpoint's calibrated one
    (``checkpoint_threshold``) until something sets ``threshold``. It is never refitted: ``fit`` refuses.
    """

    name = "checkpoint"

    def __init__(self, path: str | os.PathLike[str], fpr: float = 0.05, device: str = "cpu") -> None:
        from ..detector import Detector

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
        if self.model.tta:
            z = (z + net.logits(x.flip(3))) / 2
        return z.reshape(len(x)) / net.spec.temperature

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


@DETECTORS.register("feature-squeeze", doc="Victim softmax change under bit-depth reduction / 2x2 median (untrained).")
def _feature_squeeze(victim_net: Net, bits: int = 5, fpr: float = 0.05) -> AdversarialDetector:
    return FeatureSqueezing(victim_net, bits=bits, fpr=fpr)


@DETECTORS.register("mahalanobis", doc="Min Mahalanobis distance of the victim's penultimate features (tied cov.).")
def _mahalanobis(victim_net: Net, layer: str | None = None, val_fraction: float = 0.2, seed: int = 0,
                 fpr: float = 0.05) -> AdversarialDetector:
    return Mahalanobis(victim_net, layer=layer, val_fraction=val_fraction, seed=seed, fpr=fpr)


@DETECTORS.register("residual-cnn", doc="srm-cnn (fixed SRM residual stem + small CNN) trained on clean/attacked pairs")
def _residual_cnn(victim_net: Net | None = None, **kw: Any) -> AdversarialDetector:
    return ResidualCNN(**kw)  # the victim is not needed: this detector looks at the input only
