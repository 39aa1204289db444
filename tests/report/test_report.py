"""``build_report``: one self-contained HTML page for training + evaluation runs, attack folders, clear errors."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fakescope.adversarial.attacks.base import Attack, run_attack
from fakescope.adversarial.manifest import make_manifest, write_attack
from fakescope.evaluation.evaluate import evaluate
from fakescope.models import CIFAR10_CLASSES, ModelSpec, Net, save_checkpoint
from fakescope.report import build_report, discover
from fakescope.report.attacks import amplified
from fakescope.training.config import TrainConfig
from fakescope.training.loop import fit
from tests.helpers.report import assert_self_contained


@pytest.fixture(scope="module")
def run_with_eval(cifake_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 2-epoch training run on the tiny CIFAKE set with its evaluation in ``eval/``."""
    root = tmp_path_factory.mktemp("report")
    run = root / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAKESCOPE_CACHE", str(root / "cache"))
        fit(TrainConfig(data=str(cifake_tiny), arch="fast", arch_kwargs={"width": 8}, epochs=2, batch_size=8,
                        lr=0.05, val_fraction=0.2, out=str(run), log_every=1, seed=1), quiet=True)
        evaluate(str(run / "model.json"), str(cifake_tiny), out=str(run / "eval"), n_boot=20)
    yield run


def test_report_training_run_with_evaluation(run_with_eval: Path, tmp_path: Path) -> None:
    path = build_report(run_with_eval)
    assert path == run_with_eval / "report.html"
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert_self_contained(html)
    for title in ("Training run", "Loss and accuracy per epoch", "Epochs", "Resolved configuration",
                  "Evaluation: eval", "ROC curve", "Reliability diagram", "Confusion matrix",
                  "Per-CIFAR-10-class accuracy", "Most confident correct predictions",
                  "Most confident wrong predictions"):
        assert title in html, title
    metrics = json.loads((run_with_eval / "eval" / "metrics.json").read_text())
    for name, v in metrics["per_class_accuracy"].items():
        assert f"<td>{name}</td><td class=\"num\">{v['n']}</td>" in html
    with open(run_with_eval / "eval" / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    right = sum(r["label"] == r["pred"] for r in rows)
    assert html.count('<div class="card">') == min(8, right) + min(8, len(rows) - right)
    assert html.count('alt="Grad-CAM"') == html.count('<div class="card">')
    # the run's own numbers appear in its section
    val_acc = json.loads((run_with_eval / "metrics.json").read_text())["val_acc"]
    assert f"{val_acc:.4f}" in html

    other = build_report(run_with_eval / "eval", out=tmp_path / "sub" / "eval.html", gallery_k=2)
    html2 = other.read_text(encoding="utf-8")
    assert other == tmp_path / "sub" / "eval.html" and "Training run" not in html2
    assert html2.count('<div class="card">') <= 4 and "Most confident wrong predictions (top 2)" in html2


def test_report_falls_back_to_curves_png_without_history(run_with_eval: Path, tmp_path: Path) -> None:
    run = tmp_path / "copy"
    run.mkdir()
    for f in ("config.json", "model.json", "curves.png", "metrics.json"):
        (run / f).write_bytes((run_with_eval / f).read_bytes())
    html = build_report(run).read_text(encoding="utf-8")
    assert "Training curves (curves.png)" in html and "0 of 2" in html
    assert [f.kind for f in discover(run)] == ["training"]


def _tiny_attack(victim: Net, eps: float) -> Attack:
    """One-step L∞ FGSM in plain torch (no ART needed) in the ``Attack`` interface."""

    def generate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(x).requires_grad_(True)
        loss = F.cross_entropy(victim(xt), torch.from_numpy(y))
        (g,) = torch.autograd.grad(loss, xt)
        return (xt + eps * g.sign()).clamp(0, 1).detach().numpy()

    return Attack("fgsm", "linf", eps, {"eps": eps}, generate)


def test_report_attack_folder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    victim = Net(ModelSpec(arch="fast", task="classify", classes=list(CIFAR10_CLASSES), arch_kwargs={"width": 8}))
    ckpt = save_checkpoint(victim, tmp_path / "victim")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(12) % 10
    out = tmp_path / "attacks"
    stats = {}
    for k in (2, 8):
        atk = _tiny_attack(victim.eval(), k / 255)
        adv, stats[k] = run_attack(victim, images, labels, atk)
        manifest = make_manifest(atk, stats[k], 0, victim_net=victim, victim_checkpoint=ckpt)
        write_attack(out / f"fgsm-eps{k}", images, adv, labels, manifest)
    found = discover(out)
    assert [(f.kind, [m.name for m in f.members]) for f in found] == [("attack", ["fgsm-eps2", "fgsm-eps8"])]
    html = build_report(out, examples=3).read_text(encoding="utf-8")
    assert_self_contained(html)
    for text in ("Attacks", "fgsm-eps2", "fgsm-eps8", "2/255", "8/255", "Accuracy and success rate against ε",
                 "Examples", "perturbation ×", "victim:"):
        assert text in html, text
    assert f"{stats[8]['linf_mean'] * 255:.4f}" in html
    cards = html.count('<div class="card">')
    assert cards == 6  # 3 examples for each of the two folders
    for alt in ("original", "attacked", "perturbation"):
        assert html.count(f'alt="{alt}"') == cards
    # a single attack folder is reportable on its own too
    assert "fgsm-eps8" in build_report(out / "fgsm-eps8").read_text(encoding="utf-8")


def test_amplified_perturbation() -> None:
    a = np.full((4, 4, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0], b[1, 1, 1] = 102, 99
    vis, gain = amplified(a, b)
    assert gain == pytest.approx(127.5 / 2)
    assert vis[0, 0, 0] == 255 and vis[2, 2, 2] == 128 and vis[1, 1, 1] < 128
    assert np.all(amplified(a, a)[0] == 128)


def test_report_attack_dataset_output(tmp_path: Path) -> None:
    pytest.importorskip("art")
    from PIL import Image

    from fakescope.adversarial.run import attack_dataset

    rng = np.random.default_rng(1)
    for c in range(10):
        (tmp_path / "data" / str(c)).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "data" / str(c) / "0.png")
    torch.manual_seed(0)
    victim = save_checkpoint(Net(ModelSpec(arch="seed-cnn", task="classify", classes=[str(i) for i in range(10)])),
                             tmp_path / "victim")
    attack_dataset(victim, str(tmp_path / "data"), "fgsm", [2 / 255, 4 / 255], 10, tmp_path / "out")
    html = build_report(tmp_path / "out").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert "fgsm-eps2" in html and "fgsm-eps4" in html and "Accuracy and success rate against ε" in html


def test_report_errors_clearly_on_nothing_to_report(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="nothing to report"):
        build_report(empty)
    (empty / "notes.json").write_text(json.dumps({"hello": 1}))
    (empty / "sub").mkdir()
    (empty / "sub" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="nothing to report"):
        build_report(empty)
    assert not (empty / "report.html").exists()
    with pytest.raises(FileNotFoundError):
        build_report(tmp_path / "missing")


def _bench_row(det: str, trained_on: str, tag: str, auroc: float, source: str = "val-fpr") -> dict[str, object]:
    return {"detector": det, "trained_on": trained_on, "attack": tag.split("-")[0], "tag": tag, "eps": 2 / 255,
            "threshold_source": source, "attack_success_rate": 0.9, "auroc": auroc, "aupr": auroc,
            "tpr_at_1fpr": 0.5, "tpr_at_5fpr": 0.75, "threshold": 0.42, "tpr": 0.8, "fpr": 0.05, "accuracy": 0.9,
            "n_attacked": 40, "n_clean": 40}


def test_report_detector_benchmark(tmp_path: Path) -> None:
    from PIL import Image

    bench = tmp_path / "runs" / "bench"
    bench.mkdir(parents=True)
    Image.new("RGB", (8, 6), (200, 30, 30)).save(bench / "eps_curves.png")
    Image.new("RGB", (6, 6), (30, 30, 200)).save(bench / "cross_attack_residual-cnn.png")
    tags = ["fgsm-eps2", "pgd-eps8"]
    fams = {"jpeg-q75": {"n": 40, "l2_mean": 0.07}, "resize-x0.5": {"n": 40, "l2_mean": 2.9}}
    doc = {
        "format": "fakescope-detector-eval/1", "victim": "runs/victim/model.json", "data": "data/cifar10",
        "split": "test", "fpr_target": 0.05, "sizes": {"train": 40, "val": 20, "test": 40},
        "attacks": {t: {"attack": t.split("-")[0], "eps": 2 / 255, "norm": "linf", "n": 40} for t in tags},
        "per_attack": [_bench_row("mahalanobis", "clean", "fgsm-eps2", 0.61234),
                       _bench_row("mahalanobis", "clean", "pgd-eps8", 0.7),
                       _bench_row("residual-cnn", "fgsm-eps2", "fgsm-eps2", 0.99),
                       _bench_row("residual-cnn", "pgd-eps8", "pgd-eps8", 0.98)],
        "cross_attack": {"residual-cnn": {"train": tags, "test": tags, "auroc": [[0.99, 0.93171], [0.5, 0.98]],
                                          "tpr_at_5fpr": [[1.0, 0.8], [0.1, 0.9]]}},
        "noisy_negatives": {"families": fams, "fpr": {
            "mahalanobis@clean": {"clean": 0.05, "jpeg-q75": 0.0625, "resize-x0.5": 0.0125},
            "residual-cnn@fgsm-eps2": {"clean": 0.05, "jpeg-q75": 0.1875, "resize-x0.5": 0.5},
            "residual-cnn@pgd-eps8": {"clean": 0.05, "jpeg-q75": 0.25, "resize-x0.5": 0.75}}},
        "adaptive": {"mahalanobis": {
            "applicable": True, "detector_trained_on": "clean", "eps": 8 / 255, "steps": 20, "lambdas": [0.5, 1.0],
            "adaptive": {"fooled_and_evaded_rate": 0.8125, "victim_fooled_rate": 1.0, "detector_evaded_rate": 0.8125,
                         "n": 16, "linf_max": 8 / 255},
            "non_adaptive": {"fooled_and_evaded_rate": 0.125, "n": 16}},
            "residual-cnn": {"applicable": False, "reason": "not differentiable in this toy"}},
        "skipped": [], "plots": {"eps_curves": "elsewhere/runs/bench/eps_curves.png",
                                 "cross_attack_residual-cnn": "runs/bench/cross_attack_residual-cnn.png",
                                 "gone": "runs/bench/gone.png"},
    }
    (bench / "detector_eval.json").write_text(json.dumps(doc))
    found = discover(tmp_path)  # found in a sub-folder, and not mistaken for a study
    assert [(f.kind, f.path) for f in found] == [("detector-eval", bench)]
    html = build_report(tmp_path, out=tmp_path / "report.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert html.count("<img") == 2 and "Detector benchmark: runs/bench" in html and "gone.png" in html
    for text in ("Detector mahalanobis", "Detector residual-cnn", "0.6123", "jpeg-q75", "resize-x0.5",
                 "0.8125", "0.1250", "not differentiable in this toy", "Cross-attack AUROC", "0.9317",
                 "FPR (fgsm-eps2)", "FPR (pgd-eps8)", "TPR at 1% FPR", "threshold from"):
        assert text in html, text


def test_report_detector_benchmark_minimal_file(tmp_path: Path) -> None:
    """An older file with few fields still renders; a file of another format is not a benchmark."""
    (tmp_path / "detector_eval.json").write_text(json.dumps({
        "format": "fakescope-detector-eval/1",
        "per_attack": [{"detector": "lid", "tag": "fgsm-eps2", "auroc": 0.5, "tpr_at_5fpr": None}],
        "noisy_negatives": {"fpr": {"lid@clean": {"jpeg-q75": 0.0}}}, "cross_attack": {}, "adaptive": {}}))
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert "Detector lid" in html and "0.5000" in html and "jpeg-q75" in html and "Cross-attack" not in html
    (tmp_path / "detector_eval.json").write_text(json.dumps({"format": "something-else/1"}))
    (tmp_path / "report.html").unlink()
    with pytest.raises(ValueError, match="nothing to report"):
        build_report(tmp_path)
