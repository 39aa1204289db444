"""``fakescope evaluate``: a checkpoint on a labelled dataset → metrics.json, predictions.csv and plots.

Scores are the checkpoint's calibrated probabilities (temperature-scaled, with the flip TTA when the checkpoint was
trained with it); binary verdicts use the checkpoint's threshold unless one is given.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from ..data import ImageSet, load_dataset
from ..inference.calibration import calibrated_probs
from ..inference.predict import predict_logits
from ..io import write_json, write_text
from ..models.net import CIFAR10_CLASSES, Net
from .metrics import binary_metrics, multiclass_metrics, reliability_bins

PLOTS = ("roc.png", "pr.png", "confusion.png", "reliability.png", "per_class.png")


def predict_probs(net: Net, ds: ImageSet, tta: bool, batch_size: int = 1024) -> np.ndarray:
    """Calibrated probabilities: P(label 1) (N,) for binary models, (N, C) otherwise."""
    z = predict_logits(net, ds.images, batch_size=batch_size, tta=tta)
    return calibrated_probs(z, net.spec.temperature).astype(np.float32)  # float32, as scans report them


def evaluate_arrays(net: Net, ds: ImageSet, tta: bool, threshold: float | None = None, n_boot: int = 1000,
                    batch_size: int = 1024, probs: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of ``net`` on an in-memory ``ImageSet``.

    Binary models: ``binary_metrics`` at ``threshold`` (default: the checkpoint's), with per-CIFAR-10-class accuracy
    when file names carry it. Multi-class: ``multiclass_metrics``. ``probs`` skips inference (already computed by
    ``predict_probs``).
    """
    spec = net.spec
    if len(ds) == 0:
        raise ValueError("evaluate: the dataset holds no images")
    if len(ds.classes) != len(spec.classes):
        raise ValueError(f"evaluate: the data has {len(ds.classes)} classes {ds.classes}, the model "
                         f"{len(spec.classes)} {spec.classes}")
    if probs is None:
        probs = predict_probs(net, ds, tta, batch_size)
    if len(probs) != len(ds):
        raise ValueError(f"evaluate: {len(probs)} predictions for {len(ds)} images")
    if spec.binary:
        thr = spec.threshold if threshold is None else float(threshold)
        names = spec.classes if spec.task == "classify" else CIFAR10_CLASSES  # classify: cifar_class = label
        m = binary_metrics(ds.labels, probs, threshold=thr, n_boot=n_boot, cifar_class=ds.cifar_class,
                           class_names=names)
    else:
        m = multiclass_metrics(ds.labels, probs, spec.classes, n_boot=n_boot)
    m["classes"] = list(spec.classes)
    m["task"] = spec.task
    m["tta"] = bool(tta)
    m["temperature"] = float(spec.temperature)
    if [c.lower() for c in ds.classes] != [c.lower() for c in spec.classes]:
        m.setdefault("notes", []).append(f"data class folders {ds.classes} matched by position to model classes "
                                         f"{spec.classes}")
    return m


def evaluate(model: str, data: str, out: str | None = None, split: str = "test", threshold: float | None = None,
             batch_size: int = 1024, n_boot: int = 1000) -> dict[str, Any]:
    """Evaluate checkpoint ``model`` on labelled ``data`` (CIFAKE-layout ``split``, class folders, .npz, list).

    With ``out``: writes ``metrics.json``, ``predictions.csv`` (path, label, score, pred) and the plots.
    """
    from ..models import load_checkpoint

    net, meta = load_checkpoint(model)
    spec = net.spec
    tta = spec.tta
    ds = load_dataset(data, task=spec.task, size=spec.image_size, split=split)
    probs = predict_probs(net, ds, tta, batch_size)
    m = evaluate_arrays(net, ds, tta=tta, threshold=threshold, n_boot=n_boot, probs=probs)
    m.update({"model": str(model), "data": str(data), "split": split})
    if ds.skipped:
        m["skipped_files"] = len(ds.skipped)
    if out is not None:
        write_outputs(Path(out), m, ds, probs)
    return m


def checkpoint_test_metrics(m: dict[str, Any]) -> dict[str, Any]:
    """The test figures a checkpoint's ``metrics`` keep, from ``evaluate``'s metrics (ROC-AUC: binary tasks)."""
    out = {"test_accuracy": m["accuracy"], "test_accuracy_ci95": m["accuracy_ci95"], "test_size": m["n"]}
    if "roc_auc" in m:
        out["test_roc_auc"] = m["roc_auc"]
    return out


def predictions(ds: ImageSet, probs: np.ndarray, classes: list[str], threshold: float | None) -> list[dict[str, Any]]:
    """One row per image: path, true class, score (P(label 1), or top-1 probability) and predicted class."""
    p = np.asarray(probs, np.float64)
    if p.ndim == 1:
        pred = (p >= (0.5 if threshold is None else threshold)).astype(np.int64)
        score = p
    else:
        pred = p.argmax(axis=1)
        score = p.max(axis=1)
    paths = ds.paths if len(ds.paths) == len(ds) else [str(i) for i in range(len(ds))]
    return [{"path": paths[i], "label": classes[int(ds.labels[i])], "score": round(float(score[i]), 6),
             "pred": classes[int(pred[i])]} for i in range(len(ds))]


def write_outputs(out: Path, m: dict[str, Any], ds: ImageSet, probs: np.ndarray) -> None:
    """``metrics.json``, ``predictions.csv`` and the plots that apply, each written atomically."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    from .plots import plot_confusion, plot_per_class, plot_pr, plot_reliability, plot_roc

    out.mkdir(parents=True, exist_ok=True)
    classes = m["classes"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["path", "label", "score", "pred"], lineterminator="\n")
    w.writeheader()
    w.writerows(predictions(ds, probs, classes, m.get("threshold")))
    write_text(out / "predictions.csv", buf.getvalue())
    p = np.asarray(probs, np.float64)
    if p.ndim == 1:
        if m.get("roc_auc") is not None:
            fpr, tpr, _ = roc_curve(ds.labels, p)
            plot_roc(fpr, tpr, out / "roc.png", auc=m["roc_auc"], points=m.get("tpr_at_fpr"))
            prec, rec, _ = precision_recall_curve(ds.labels, p)
            plot_pr(rec, prec, out / "pr.png", ap=m["average_precision"], prevalence=float(ds.labels.mean()))
        plot_reliability(reliability_bins(ds.labels, p), out / "reliability.png", ece=m["ece"],
                         xlabel=f"predicted P({classes[1]})", ylabel=f"observed frequency of {classes[1]}")
    else:
        correct = (p.argmax(axis=1) == ds.labels).astype(np.float64)
        plot_reliability(reliability_bins(correct, p.max(axis=1)), out / "reliability.png", ece=m["ece"],
                         xlabel="top-1 confidence", ylabel="top-1 accuracy")
    plot_confusion(m["confusion_matrix"], classes, out / "confusion.png")
    if m.get("per_class_accuracy"):
        plot_per_class(m["per_class_accuracy"], out / "per_class.png", overall=m["accuracy"],
                       title="Accuracy per CIFAR-10 class" if p.ndim == 1 else "Accuracy per class")
    write_json(out / "metrics.json", m)


def format_metrics(m: dict[str, Any]) -> str:
    """A short human-readable summary of an ``evaluate`` result."""
    head = " ".join(f"{k} {m[k]}" for k in ("model", "data", "split") if k in m)
    lines = [head] if head else []
    ci = m.get("accuracy_ci95")
    ci_txt = f"  (95% CI {ci[0]:.2%} – {ci[1]:.2%})" if ci else ""
    lines.append(f"images        {m['n']}")
    lines.append(f"accuracy      {m['accuracy']:.2%}{ci_txt}")
    lines.append(f"balanced acc  {m['balanced_accuracy']:.2%}")
    if "roc_auc" in m:
        pos = m.get("classes", ["", "label 1"])[1]
        lines.append(f"threshold     {m['threshold']:.3f}  on P({pos})")
        lines.append(f"ROC-AUC       {_num(m['roc_auc'])}    AP {_num(m['average_precision'])}")
        lines.append(f"precision     {m['precision']:.4f}    recall {m['recall']:.4f}    F1 {m['f1']:.4f}")
        tpr = m.get("tpr_at_fpr", {})
        lines.append("TPR @ FPR     " + "    ".join(f"{float(k):.0%}: {_num(v)}" for k, v in tpr.items()))
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        lines.append(f"confusion     TN {tn}  FP {fp}  FN {fn}  TP {tp}")
        lines.append(f"calibration   ECE {m['ece']:.4f}    Brier {m['brier']:.4f}")
    else:
        lines.append(f"macro F1      {m['f1_macro']:.4f}")
        lines.append(f"calibration   top-1 ECE {m['ece']:.4f}")
    per = m.get("per_class_accuracy")
    if per:
        lines.append("per class")
        width = max(len(k) for k in per)
        lines += [f"  {k:<{width}}  {v['accuracy']:7.2%}  (n={v['n']})" for k, v in per.items()]
    lines += [f"note: {n}" for n in m.get("notes", [])]
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"
