"""Evaluation metrics on numpy arrays: accuracy with bootstrap CI, ROC/PR summaries, calibration, per class.

Conventions
-----------
* Binary tasks: ``labels`` are 0/1 and ``scores`` are calibrated probabilities of label 1; the prediction is
  ``score >= threshold`` (the same rule as ``calibration.choose_threshold``).
* Every returned value is a plain Python ``int``/``float``/``list``/``dict``/``None`` so results serialise to JSON
  as they are; undefined quantities are ``None`` (never NaN) with an explanation in ``notes``.
* Expected calibration error (ECE), binary: the probabilities of label 1 are put into ``n_bins`` equal-width bins
  on [0, 1] (the last bin includes 1.0); in each non-empty bin b compare the mean predicted probability
  ``conf_b`` with the observed frequency of label 1 ``freq_b``: ``ECE = sum_b (n_b / N) * |freq_b - conf_b|``.
  This is the reliability of P(y=1) as drawn in the reliability diagram. Multi-class: the same with the top-1
  confidence and whether the top-1 prediction is correct ("top-1 ECE").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from ..data.tasks import CIFAR10_CLASSES

FPR_TARGETS = (0.01, 0.05)
_BOOT_CHUNK_ELEMENTS = 1 << 22  # resampled indices held in memory at once (~32 MB of int64)


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap CI of the mean of per-item ``values`` (e.g. 0/1 correctness), resampling items.

    Vectorised: resampled index matrices are drawn in memory-bounded chunks. ``None`` when ``n_boot`` is 0.
    """
    v = np.asarray(values, np.float64).ravel()
    n = len(v)
    if n == 0:
        raise ValueError("bootstrap_ci: no values")
    if n_boot <= 0:
        return None
    rng = np.random.default_rng(seed)
    rows = max(1, _BOOT_CHUNK_ELEMENTS // n)
    means = np.empty(n_boot, np.float64)
    for start in range(0, n_boot, rows):
        k = min(rows, n_boot - start)
        idx = rng.integers(0, n, size=(k, n))
        means[start:start + k] = v[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def reliability_bins(labels: np.ndarray, scores: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Equal-width bins of ``scores`` on [0, 1]: ``edges``, ``centers``, ``accuracy`` (mean label, i.e. observed
    frequency of 1), ``confidence`` (mean score) and ``counts``. Empty bins have NaN accuracy and confidence."""
    y = np.asarray(labels, np.float64).ravel()
    s = np.asarray(scores, np.float64).ravel()
    if len(y) != len(s):
        raise ValueError(f"reliability_bins: {len(y)} labels for {len(s)} scores")
    if n_bins < 1:
        raise ValueError("reliability_bins: n_bins must be >= 1")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip((s * n_bins).astype(np.int64), 0, n_bins - 1)  # bin b = [b/n, (b+1)/n), last one closed
    counts = np.bincount(idx, minlength=n_bins).astype(np.int64)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    sum_s = np.bincount(idx, weights=s, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(counts > 0, sum_y / counts, np.nan)
        conf = np.where(counts > 0, sum_s / counts, np.nan)
    return {"edges": edges, "centers": (edges[:-1] + edges[1:]) / 2, "accuracy": acc, "confidence": conf,
            "counts": counts}


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, n_bins: int = 15) -> float:
    """ECE = sum over bins of (bin share) * |observed frequency - mean score| (see the module docstring)."""
    b = reliability_bins(labels, scores, n_bins)
    n = b["counts"].sum()
    if n == 0:
        raise ValueError("expected_calibration_error: no values")
    m = b["counts"] > 0
    return float(np.sum(b["counts"][m] / n * np.abs(b["accuracy"][m] - b["confidence"][m])))


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, targets: Sequence[float] = FPR_TARGETS,
               drop_intermediate: bool = False) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """TPR at the most permissive ROC threshold whose FPR is still <= each target (the best TPR under that FPR
    budget), and that threshold. Keys are the targets as strings ("0.01"), in the order given. ``None`` when only
    one class.

    ``drop_intermediate`` reads the ROC curve with sklearn's collinear points dropped, as the adversarial protocol
    always has (``adversarial.protocol.evaluate_scores``); it can only differ where tied scores of both classes
    put a dropped point on a sloped segment just under a target.
    """
    y = np.asarray(labels).ravel()
    if len(np.unique(y)) < 2:
        return {_key(t): None for t in targets}, {_key(t): None for t in targets}
    fpr, tpr, thr = roc_curve(y, scores, drop_intermediate=drop_intermediate)
    tprs: dict[str, float | None] = {}
    thrs: dict[str, float | None] = {}
    for t in targets:
        i = int(np.flatnonzero(fpr <= t + 1e-12)[-1])  # fpr[0] == 0, so there is always one
        tprs[_key(t)] = float(tpr[i])
        thrs[_key(t)] = float(thr[i]) if np.isfinite(thr[i]) else None
    return tprs, thrs


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5, n_boot: int = 1000,
                   seed: int = 0, cifar_class: np.ndarray | None = None,
                   class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """All binary metrics for probabilities of label 1 at ``threshold`` (prediction = ``score >= threshold``).

    ``cifar_class`` (-1 = unknown) adds ``per_class_accuracy`` keyed by ``class_names`` (CIFAR-10 by default).
    """
    y, s = _check_binary(labels, scores)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    pred = (s >= threshold).astype(np.int64)
    correct = (pred == y).astype(np.float64)
    cm = confusion_matrix(y, pred, labels=[0, 1])
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    both = bool(y.any() and not y.all())
    notes: list[str] = []
    recalls = [tp / (tp + fn)] if tp + fn else []
    recalls += [tn / (tn + fp)] if tn + fp else []
    out: dict[str, Any] = {
        "n": int(len(y)),
        "n_positive": int(y.sum()),
        "threshold": float(threshold),
        "accuracy": float(correct.mean()),
        "accuracy_ci95": bootstrap_ci(correct, n_boot, seed),
        "balanced_accuracy": float(np.mean(recalls)),
        "precision": float(precision_score(y, pred, labels=[0, 1], zero_division=0)),
        "recall": float(recall_score(y, pred, labels=[0, 1], zero_division=0)),
        "f1": float(f1_score(y, pred, labels=[0, 1], zero_division=0)),
        "roc_auc": float(roc_auc_score(y, s)) if both else None,
        "average_precision": float(average_precision_score(y, s)) if both else None,
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "ece": expected_calibration_error(y, s),
        "brier": float(np.mean((s - y) ** 2)),
    }
    out["tpr_at_fpr"], out["threshold_at_fpr"] = tpr_at_fpr(y, s)
    if not both:
        notes.append(f"only label {int(y[0])} present: ROC-AUC, average precision and TPR@FPR are undefined")
    if cifar_class is not None:
        per = per_class_accuracy(correct, cifar_class, class_names)
        if per:
            out["per_class_accuracy"] = per
    if notes:
        out["notes"] = notes
    return out


def per_class_accuracy(correct: np.ndarray, groups: np.ndarray, class_names: Sequence[str] | None = None
                       ) -> dict[str, dict[str, Any]]:
    """``{name: {"n": k, "accuracy": a}}`` over items with group index >= 0 (negative = unknown, ignored)."""
    c = np.asarray(correct, np.float64).ravel()
    g = np.asarray(groups, np.int64).ravel()
    if len(c) != len(g):
        raise ValueError(f"per_class_accuracy: {len(g)} class indices for {len(c)} items")
    names = list(class_names) if class_names is not None else list(CIFAR10_CLASSES)
    if g.size and g.max(initial=-1) >= len(names):
        raise ValueError(f"class index {int(g.max())} out of range for {len(names)} class names")
    out: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(names):
        m = g == k
        if m.any():
            out[name] = {"n": int(m.sum()), "accuracy": float(c[m].mean())}
    return out


def multiclass_metrics(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str], n_boot: int = 1000,
                       seed: int = 0) -> dict[str, Any]:
    """Accuracy (+ bootstrap CI), balanced accuracy, macro F1, per-class accuracy, confusion matrix, top-1 ECE."""
    y = np.asarray(labels).ravel()
    p = np.asarray(probs, np.float64)
    names = list(class_names)
    if len(y) == 0:
        raise ValueError("multiclass_metrics: no items to evaluate")
    if p.ndim != 2 or p.shape != (len(y), len(names)):
        raise ValueError(f"multiclass_metrics: probs must have shape ({len(y)}, {len(names)}), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("multiclass_metrics: probabilities contain NaN or infinite values")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= len(names):
        raise ValueError(f"multiclass_metrics: labels must be integers in 0..{len(names) - 1}")
    pred = p.argmax(axis=1)
    correct = (pred == y).astype(np.float64)
    cm = confusion_matrix(y, pred, labels=list(range(len(names))))
    per = per_class_accuracy(correct, y, names)
    return {
        "n": int(len(y)),
        "accuracy": float(correct.mean()),
        "accuracy_ci95": bootstrap_ci(correct, n_boot, seed),
        "balanced_accuracy": float(np.mean([v["accuracy"] for v in per.values()])),
        "f1_macro": float(f1_score(y, pred, labels=sorted(set(y.tolist())), average="macro", zero_division=0)),
        "per_class_accuracy": per,
        "confusion_matrix": cm.astype(int).tolist(),
        "ece": expected_calibration_error(correct, p.max(axis=1)),
        "classes": names,
    }


def _check_binary(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, np.float64).ravel()
    if len(y) == 0:
        raise ValueError("binary_metrics: no items to evaluate (empty labels)")
    if len(y) != len(s):
        raise ValueError(f"binary_metrics: {len(y)} labels for {len(s)} scores")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"binary_metrics: labels must be 0 or 1, found {sorted(set(np.unique(y).tolist()))[:5]}")
    if not np.isfinite(s).all() or s.min() < 0.0 or s.max() > 1.0:
        raise ValueError("binary_metrics: scores must be probabilities in [0, 1] (not logits, no NaN)")
    return y.astype(np.int64), s


def _key(t: float) -> str:
    return f"{t:g}"

