"""Temperature scaling and decision-threshold selection, fitted on validation data only.

``calibrate`` is the one calibration every fitted model goes through (``fit``, ``fakescope ensemble``, the evasion
study's fine-tuned detector, ``fakescope guard``); ``calibrated_probs`` is the one calibrated-probability function.
Importing this module does not import torch (only ``fit_temperature`` needs it), so the torch-free scan engine
calibrates its scores with ``calibrated_probs`` too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def calibrated_probs(logits: np.ndarray, temperature: float) -> np.ndarray:
    """P(label 1) = sigmoid(logit / T) for (N,) logits, softmax(logits / T) for (N, C); no overflow warnings for
    very confident logits."""
    z = np.clip(np.asarray(logits, np.float64) / temperature, -500.0, 500.0)
    if z.ndim == 2:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-z))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """The temperature T > 0 minimising validation NLL of ``logits / T`` (binary or multi-class)."""
    import torch
    import torch.nn.functional as F

    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels))
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def nll() -> torch.Tensor:
        opt.zero_grad()
        s = z / log_t.exp()
        loss = (F.binary_cross_entropy_with_logits(s, y.double()) if s.dim() == 1
                else F.cross_entropy(s, y.long()))
        loss.backward()
        return loss

    opt.step(nll)
    return float(np.clip(log_t.exp().item(), 0.05, 20.0))


def choose_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """Threshold on P(label 1) maximising balanced accuracy; ties go to the one nearest 0.5."""
    p = np.asarray(probs, np.float64)
    y = np.asarray(labels).astype(bool)
    if y.all() or (~y).all():
        return 0.5
    cands = np.unique(np.concatenate([p, [0.5]]))
    mids = np.concatenate([(cands[:-1] + cands[1:]) / 2, [0.5]])
    pos, neg = p[y], p[~y]
    pos_s, neg_s = np.sort(pos), np.sort(neg)
    tpr = 1.0 - np.searchsorted(pos_s, mids, side="left") / len(pos)
    tnr = np.searchsorted(neg_s, mids, side="left") / len(neg)
    bacc = (tpr + tnr) / 2
    best = np.flatnonzero(bacc >= bacc.max() - 1e-12)
    return float(mids[best[np.argmin(np.abs(mids[best] - 0.5))]])


def threshold_at_fpr(clean_scores: np.ndarray, fpr: float = 0.05) -> float:
    """The smallest observed clean score with at most ``fpr`` of ``clean_scores`` strictly above it."""
    s = np.sort(np.asarray(clean_scores, np.float64))
    if not len(s):
        raise ValueError("no clean scores to set a threshold on")
    k = int(np.floor(fpr * len(s) + 1e-9))
    return float(s[max(0, len(s) - 1 - k)])


@dataclass(frozen=True)
class Calibration:
    """What ``calibrate`` fitted on validation logits.

    ``threshold`` is on P(label 1) (``None`` for multi-class); ``val_acc`` is the validation accuracy of the
    calibrated decision (P >= threshold, or argmax); ``probs`` are the calibrated validation probabilities.
    """

    temperature: float
    threshold: float | None
    val_acc: float
    probs: np.ndarray


def calibrate(logits: np.ndarray, labels: np.ndarray, threshold: str | float = "balanced") -> Calibration:
    """Fit the temperature, and for binary (N,) logits the decision threshold, on validation data.

    ``threshold``: ``"balanced"`` picks the threshold maximising balanced accuracy (``choose_threshold``); a
    float is a target false-positive rate: the threshold flags at most that fraction of the label-0 images
    (``threshold_at_fpr`` on their calibrated probabilities). Multi-class (N, C) logits get no threshold.
    """
    z, y = np.asarray(logits), np.asarray(labels)
    if isinstance(threshold, str) and threshold != "balanced":
        raise ValueError(f"threshold must be 'balanced' or a false-positive rate, got {threshold!r}")
    temperature = fit_temperature(z, y)
    probs = calibrated_probs(z, temperature)
    if z.ndim != 1:
        return Calibration(temperature, None, float((z.argmax(1) == y).mean()), probs)
    if isinstance(threshold, str):
        thr = choose_threshold(probs, y)
    else:
        thr = threshold_at_fpr(probs[y == 0], float(threshold))
    return Calibration(temperature, thr, float(((probs >= thr).astype(int) == y).mean()), probs)
