"""evaluate_arrays and evaluate() end to end on a tiny untrained model and a handful of tiny JPEGs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakescope.data import ImageSet
from fakescope.evaluation.evaluate import PLOTS, evaluate, evaluate_arrays, format_metrics
from fakescope.models import CIFAR10_CLASSES, ModelSpec, Net, save_checkpoint

NAMES = ["0001.jpg", "0002 (3).jpg", "0003 (3).jpg", "0004 (10).jpg", "0005 (2).jpg", "odd-name.jpg"]


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = Net(ModelSpec(arch="seed-cnn", threshold=0.4, temperature=1.5)).eval()
    return save_checkpoint(net, tmp_path / "m", tta=True)


@pytest.fixture
def tiny_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FAKESCOPE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for shift, cls in enumerate(("REAL", "FAKE")):
        (root / "test" / cls).mkdir(parents=True)
        (root / "train" / cls).mkdir(parents=True)  # CIFAKE layout: evaluate must pick test/
        for name in NAMES:
            px = np.clip(rng.normal(100 + 40 * shift, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(root / "test" / cls / name, quality=90)
    return root


def random_set(n: int = 24, classes: list[str] | None = None) -> ImageSet:
    rng = np.random.default_rng(1)
    classes = classes or ["REAL", "FAKE"]
    labels = np.arange(n, dtype=np.int64) % len(classes)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return ImageSet(images, labels, classes, cifar_class=np.arange(n, dtype=np.int64) % 11 - 1)


def test_evaluate_arrays_binary() -> None:
    torch.manual_seed(0)
    net = Net(ModelSpec(arch="seed-cnn")).eval()
    ds = random_set()
    m = evaluate_arrays(net, ds, tta=False, n_boot=100)
    assert m["n"] == 24 and m["task"] == "synthetic" and m["threshold"] == 0.5 and m["tta"] is False
    assert 0 <= m["accuracy"] <= 1 and 0 <= m["roc_auc"] <= 1 and 0 <= m["ece"] <= 1
    assert set(m["per_class_accuracy"]) <= set(CIFAR10_CLASSES)
    assert sum(v["n"] for v in m["per_class_accuracy"].values()) == int((ds.cifar_class >= 0).sum())
    m2 = evaluate_arrays(net, ds, tta=True, threshold=0.0, n_boot=0)
    assert m2["threshold"] == 0.0 and m2["recall"] == 1.0 and m2["accuracy_ci95"] is None
    json.dumps(m)


def test_evaluate_arrays_multiclass_and_mismatch() -> None:
    classes = ["a", "b", "c"]
    net = Net(ModelSpec(arch="seed-cnn", task="classify", classes=classes)).eval()
    ds = random_set(classes=classes)
    ds.cifar_class = ds.labels.copy()
    m = evaluate_arrays(net, ds, tta=False, n_boot=50)
    assert m["n"] == 24 and set(m["per_class_accuracy"]) == set(classes)
    assert np.asarray(m["confusion_matrix"]).shape == (3, 3) and 0 <= m["ece"] <= 1
    assert "macro F1" in format_metrics(m)
    with pytest.raises(ValueError, match="classes"):
        evaluate_arrays(Net(ModelSpec(arch="seed-cnn")), ds, tta=False)


@pytest.mark.slow
def test_evaluate_end_to_end(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    m = evaluate(str(tiny_model), str(tiny_data), out=str(out), n_boot=100)
    assert m["n"] == 12 and m["split"] == "test" and m["task"] == "synthetic"
    assert m["model"] == str(tiny_model) and m["data"] == str(tiny_data)
    assert m["tta"] is True and m["threshold"] == 0.4 and m["temperature"] == 1.5
    for key in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "average_precision",
                "ece", "brier"):
        assert 0.0 <= m[key] <= 1.0, key
    lo, hi = m["accuracy_ci95"]
    assert lo <= m["accuracy"] <= hi
    assert sum(map(sum, m["confusion_matrix"])) == 12
    # "0001.jpg" → airplane, "(3)" → bird, "(10)" → truck, "(2)" → automobile, "odd-name" → unknown
    per = m["per_class_accuracy"]
    assert {k: v["n"] for k, v in per.items()} == {"airplane": 2, "automobile": 2, "bird": 4, "truck": 2}
    for name in ("metrics.json", "predictions.csv", *PLOTS):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "metrics.json").read_text())["n"] == 12
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 12 and set(rows[0]) == {"path", "label", "score", "pred"}
    for r in rows:
        assert r["label"] in ("REAL", "FAKE") and r["pred"] == ("FAKE" if float(r["score"]) >= 0.4 else "REAL")
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries
    text = format_metrics(m)
    for word in ("accuracy", "95% CI", "ROC-AUC", "AP", "F1", "TPR @ FPR", "ECE", "bird"):
        assert word in text


def test_evaluate_threshold_override_and_no_out(tiny_model: Path, tiny_data: Path) -> None:
    m = evaluate(str(tiny_model), str(tiny_data), threshold=1.0, n_boot=0)
    assert m["threshold"] == 1.0 and m["accuracy_ci95"] is None and 0 <= m["precision"] <= 1
    m0 = evaluate(str(tiny_model), str(tiny_data), threshold=0.0, n_boot=0)
    assert m0["recall"] == 1.0 and m0["confusion_matrix"][0][0] == 0
