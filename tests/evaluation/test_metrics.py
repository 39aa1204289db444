"""Metrics against scikit-learn and hand computations: bootstrap CI, ECE, TPR@FPR, per class, degenerate input."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn import metrics as skm

from fakescope.evaluation.metrics import (
    binary_metrics,
    bootstrap_ci,
    expected_calibration_error,
    multiclass_metrics,
    reliability_bins,
    tpr_at_fpr,
)
from fakescope.models import CIFAR10_CLASSES


def random_binary(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    return y, s


def test_binary_metrics_agree_with_sklearn() -> None:
    y, s = random_binary(500)
    thr = 0.45
    m = binary_metrics(y, s, threshold=thr, n_boot=200)
    pred = (s >= thr).astype(int)
    assert m["n"] == 500 and m["threshold"] == thr
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert m["average_precision"] == pytest.approx(skm.average_precision_score(y, s))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, s))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert set(m["tpr_at_fpr"]) == {"0.01", "0.05"}
    assert 0 <= m["tpr_at_fpr"]["0.01"] <= m["tpr_at_fpr"]["0.05"] <= 1
    assert "notes" not in m and "per_class_accuracy" not in m
    json.dumps(m)  # plain Python types only


def test_bootstrap_ci_contains_estimate_and_narrows() -> None:
    widths = []
    for n in (200, 5000):
        y, s = random_binary(n, seed=n)
        m = binary_metrics(y, s, n_boot=1000, seed=0)
        lo, hi = m["accuracy_ci95"]
        assert lo <= m["accuracy"] <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 3  # ~ 1/sqrt(n): 5 times narrower expected
    # seeded, so reproducible
    y, s = random_binary(300)
    assert binary_metrics(y, s, seed=3)["accuracy_ci95"] == binary_metrics(y, s, seed=3)["accuracy_ci95"]


def test_bootstrap_is_vectorised_and_fast() -> None:
    v = (np.random.default_rng(0).random(5000) < 0.9).astype(float)
    t = time.perf_counter()
    lo, hi = bootstrap_ci(v, n_boot=1000, seed=0)
    assert time.perf_counter() - t < 2.0
    # binomial standard error of a mean of 0.9 over 5000 items: ~0.0042, so the 95% interval is ~0.017 wide
    assert 0.012 < hi - lo < 0.022
    assert bootstrap_ci(v, n_boot=0) is None


def test_ece_near_zero_when_calibrated_and_large_when_overconfident() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(100_000)
    y = (rng.random(p.size) < p).astype(int)  # y ~ Bernoulli(p): p is perfectly calibrated
    assert expected_calibration_error(y, p) < 0.01
    assert binary_metrics(y, p, n_boot=0)["ece"] < 0.01
    over = np.clip((p - 0.5) * 4 + 0.5, 0, 1)  # pushed towards 0 and 1
    assert expected_calibration_error(y, over) > 0.15


def test_reliability_bins() -> None:
    y = np.array([0, 1, 1, 0, 1])
    s = np.array([0.0, 0.05, 0.5, 0.99, 1.0])
    b = reliability_bins(y, s, n_bins=10)
    assert b["counts"].tolist() == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]  # 1.0 falls in the last bin
    assert b["centers"][0] == pytest.approx(0.05) and len(b["edges"]) == 11
    assert b["accuracy"][0] == 0.5 and b["confidence"][0] == pytest.approx(0.025)
    assert np.isnan(b["accuracy"][1])
    assert b["accuracy"][9] == 0.5 and b["confidence"][9] == pytest.approx(0.995)
    # ECE by hand: (2/5)|0.5-0.025| + (1/5)|1-0.5| + (2/5)|0.5-0.995|
    assert expected_calibration_error(y, s, n_bins=10) == pytest.approx(0.4 * 0.475 + 0.2 * 0.5 + 0.4 * 0.495)


def test_tpr_at_fpr_by_hand() -> None:
    neg = [0.1, 0.2, 0.3, 0.4, 0.9]
    pos = [0.35, 0.5, 0.8, 0.95]
    y = np.array([0] * 5 + [1] * 4)
    s = np.array(neg + pos)
    tpr, thr = tpr_at_fpr(y, s, targets=(0.0, 0.2, 0.5))
    # FPR 0: only 0.95 passes → 1/4. FPR <= 0.2 (one negative, 0.9): down to 0.5 → 3/4.
    # FPR <= 0.5 (two negatives, 0.9 and 0.4): down to 0.35 → 4/4.
    assert tpr == {"0": 0.25, "0.2": 0.75, "0.5": 1.0}
    assert thr == {"0": 0.95, "0.2": 0.5, "0.5": 0.35}
    m = binary_metrics(y, s, n_boot=0)
    assert m["tpr_at_fpr"] == {"0.01": 0.25, "0.05": 0.25}
    assert tpr_at_fpr(y, s, targets=(0.0, 0.2, 0.5), drop_intermediate=True) == (tpr, thr)  # no ties: the same


def test_tpr_at_fpr_with_ties_and_dropped_points() -> None:
    # each score held by one negative and one positive: the ROC is the diagonal (0, 0), (.25, .25), ..., (1, 1)
    y = np.array([0, 1] * 4)
    s = np.repeat([4.0, 3.0, 2.0, 1.0], 2)
    assert tpr_at_fpr(y, s, targets=(0.5,))[0] == {"0.5": 0.5}
    # sklearn's drop_intermediate keeps only the ends of the collinear run: the reading falls back to (.25, .25)
    assert tpr_at_fpr(y, s, targets=(0.5,), drop_intermediate=True)[0] == {"0.5": 0.25}


def test_per_class_accuracy_from_cifar_class() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    s = np.array([0.1, 0.9, 0.8, 0.2, 0.7, 0.3])  # correct: T F T F T T
    cc = np.array([0, 0, 0, 3, 3, -1])
    m = binary_metrics(y, s, n_boot=0, cifar_class=cc)
    assert m["per_class_accuracy"] == {
        CIFAR10_CLASSES[0]: {"n": 3, "accuracy": pytest.approx(2 / 3)},
        CIFAR10_CLASSES[3]: {"n": 2, "accuracy": 0.5},
    }
    m = binary_metrics(y, s, n_boot=0, cifar_class=cc, class_names=list("abcd"))
    assert set(m["per_class_accuracy"]) == {"a", "d"}
    assert "per_class_accuracy" not in binary_metrics(y, s, n_boot=0, cifar_class=np.full(6, -1))


def test_degenerate_inputs() -> None:
    m = binary_metrics(np.ones(20, int), np.linspace(0, 1, 20), n_boot=50)
    assert m["roc_auc"] is None and m["average_precision"] is None
    assert m["tpr_at_fpr"] == {"0.01": None, "0.05": None}
    assert any("undefined" in n for n in m["notes"])
    assert m["balanced_accuracy"] == m["accuracy"] == m["recall"]
    json.dumps(m)
    with pytest.raises(ValueError, match="empty"):
        binary_metrics(np.array([], int), np.array([]))
    with pytest.raises(ValueError, match="probabilities"):
        binary_metrics(np.array([0, 1]), np.array([-2.0, 3.0]))
    with pytest.raises(ValueError, match="0 or 1"):
        binary_metrics(np.array([0, 2]), np.array([0.2, 0.3]))
    with pytest.raises(ValueError, match="labels for"):
        binary_metrics(np.array([0, 1]), np.array([0.2]))
    with pytest.raises(ValueError, match="threshold"):
        binary_metrics(np.array([0, 1]), np.array([0.2, 0.3]), threshold=1.5)


def test_multiclass_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(2)
    n, k = 400, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    names = ["a", "b", "c", "d"]
    m = multiclass_metrics(y, p, names, n_boot=300)
    pred = p.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    lo, hi = m["accuracy_ci95"]
    assert lo <= m["accuracy"] <= hi
    for i, c in enumerate(names):
        assert m["per_class_accuracy"][c]["n"] == int((y == i).sum())
        assert m["per_class_accuracy"][c]["accuracy"] == pytest.approx((pred[y == i] == i).mean())
    assert m["ece"] == pytest.approx(expected_calibration_error(pred == y, p.max(1)))
    json.dumps(m)
    with pytest.raises(ValueError, match="shape"):
        multiclass_metrics(y, p[:, :3], names)
    with pytest.raises(ValueError, match="no items"):
        multiclass_metrics(np.array([], int), np.zeros((0, 4)), names)
