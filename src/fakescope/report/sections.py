"""Report sections for training runs, evaluation runs and studies; each returns ``(title, body html)``."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..io import read_jsonl
from .gallery import gallery_html
from .html import esc, figure_bytes, figure_file, kv_table, note, table

EVAL_PLOTS = (("roc.png", "ROC curve"), ("pr.png", "Precision-recall curve"), ("confusion.png", "Confusion matrix"),
              ("reliability.png", "Reliability diagram"), ("per_class.png", "Accuracy per class"))
MAX_EPOCH_ROWS = 60


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _rendered(plot: Callable[[Any, Path], None], arg: Any, caption: str) -> str:
    """A figure drawn by ``plot(arg, path)`` into a temporary PNG and embedded; '' when the plot draws nothing."""
    with tempfile.TemporaryDirectory(prefix="fakescope-report-") as tmp:
        png = Path(tmp) / "figure.png"
        plot(arg, png)
        return figure_bytes(png.read_bytes(), caption) if png.exists() else ""


def _figs(parts: list[str]) -> str:
    parts = [p for p in parts if p]
    return f'<div class="figs">{"".join(parts)}</div>' if parts else ""


# ---- training ---------------------------------------------------------------------------------------------------


def training_section(run: Path) -> tuple[str, str]:
    """Summary, curves re-plotted from ``history.jsonl`` (else ``curves.png``), epoch table, config, checkpoint."""
    from ..evaluation.plots import plot_history

    cfg = _json(run / "config.json")
    metrics = _json(run / "metrics.json")
    model = _json(run / "model.json")
    spec = model.get("spec", {}) if isinstance(model.get("spec"), dict) else {}
    history = read_jsonl(run / "history.jsonl")
    epochs = [r for r in history if r.get("kind") == "epoch"]
    summary: dict[str, Any] = {
        "task": cfg.get("task"), "architecture": cfg.get("arch"), "data": cfg.get("data"),
        "epochs completed": f"{len(epochs)} of {cfg.get('epochs')}",
        "augmentation": ("flip" if cfg.get("flip", True) else "none") + (
            " + robust (JPEG/blur/noise/rescale)" if cfg.get("augment") == "robust" else ""),
        "validation accuracy (calibrated)": metrics.get("val_acc"), "validation loss": metrics.get("val_loss"),
        "validation images": metrics.get("val_size"),
        "best epoch validation accuracy": max((r.get("val_acc", 0.0) for r in epochs), default=None),
        "training time (s)": sum(float(r.get("seconds", 0.0)) for r in epochs) if epochs else None,
        "threshold": spec.get("threshold"), "temperature": spec.get("temperature"),
        "checkpoint": "model.json + model.safetensors" if model else "not written yet (run unfinished?)",
    }
    parts = [kv_table(summary)]
    curves = _rendered(plot_history, history, "Loss and accuracy per epoch (from history.jsonl)") if epochs else ""
    if not curves and (run / "curves.png").is_file():
        curves = figure_file(run / "curves.png", "Training curves (curves.png)")
    parts.append(_figs([curves]) or note("history.jsonl holds no completed epoch: no training curves."))
    if epochs:
        shown = epochs if len(epochs) <= MAX_EPOCH_ROWS else epochs[:: max(1, len(epochs) // MAX_EPOCH_ROWS)]
        parts.append("<h3>Epochs</h3>" + table(
            ["epoch", "train loss", "train acc", "val loss", "val acc", "seconds"],
            [[r.get("epoch"), r.get("train_loss"), r.get("train_acc"), r.get("val_loss"), r.get("val_acc"),
              r.get("seconds")] for r in shown]))
    if cfg:
        parts.append("<h3>Resolved configuration (config.json)</h3>" + kv_table(cfg, ("field", "value")))
    if spec:
        parts.append("<h3>Checkpoint (model.json)</h3>" + kv_table(
            {**{k: spec.get(k) for k in ("arch", "arch_kwargs", "task", "classes", "image_size", "resample")},
             "tta": model.get("tta"), "data fingerprint": model.get("data_fingerprint"),
             "trained with": model.get("trained_with"), "weights sha256": model.get("weights_sha256")}))
    return "Training run", "".join(parts)


# ---- evaluation -------------------------------------------------------------------------------------------------


def _headline(m: dict[str, Any]) -> dict[str, Any]:
    ci = m.get("accuracy_ci95")
    rows: dict[str, Any] = {"model": m.get("model"), "data": m.get("data"), "split": m.get("split"),
                            "images": m.get("n"), "accuracy": m.get("accuracy"),
                            "accuracy 95% CI": f"{ci[0]:.4f} – {ci[1]:.4f}" if ci else None,
                            "balanced accuracy": m.get("balanced_accuracy")}
    if "roc_auc" in m:  # binary
        classes = m.get("classes") or ["label 0", "label 1"]
        rows.update({f"threshold on P({classes[-1]})": m.get("threshold"), "ROC-AUC": m.get("roc_auc"),
                     "average precision": m.get("average_precision"), "precision": m.get("precision"),
                     "recall": m.get("recall"), "F1": m.get("f1"), "ECE": m.get("ece"), "Brier": m.get("brier")})
        for k, v in (m.get("tpr_at_fpr") or {}).items():
            rows[f"TPR at FPR {float(k):g}"] = v
    else:
        rows.update({"macro F1": m.get("f1_macro"), "top-1 ECE": m.get("ece")})
    rows.update({"test-time flip averaging": m.get("tta"), "temperature": m.get("temperature"),
                 "unreadable files skipped": m.get("skipped_files")})
    return {k: v for k, v in rows.items() if v is not None}


def evaluation_section(run: Path, gallery_k: int = 8) -> tuple[str, str]:
    """Headline metrics, the evaluation plots, confusion and per-class tables, the prediction galleries."""
    m = _json(run / "metrics.json")
    if not m:
        return "Evaluation", note("metrics.json is missing or unreadable: only predictions.csv was found.")
    parts = [kv_table(_headline(m), ("metric", "value"))]
    parts += [note(str(n)) for n in m.get("notes", [])]
    parts.append(_figs([figure_file(run / f, cap) for f, cap in EVAL_PLOTS if (run / f).is_file()]))
    classes = list(m.get("classes") or [])
    cm = m.get("confusion_matrix")
    if cm and len(cm) == len(classes):
        parts.append("<h3>Confusion matrix (rows: true, columns: predicted)</h3>"
                     + table(["true \\ predicted", *classes], [[c, *row] for c, row in zip(classes, cm, strict=True)]))
    per = m.get("per_class_accuracy") or {}
    if per:
        title = "Per-CIFAR-10-class accuracy" if "roc_auc" in m else "Per-class accuracy"
        rows = [[name, v.get("n"), v.get("accuracy"), (v.get("accuracy") or 0.0) - (m.get("accuracy") or 0.0)]
                for name, v in per.items()]
        parts.append(f"<h3>{esc(title)}</h3>" + table(["class", "images", "accuracy", "vs overall"], rows))
    elif "roc_auc" in m:
        parts.append(note("No per-CIFAR-10-class accuracy: the file names carry no CIFAR-10 class "
                          "(CIFAKE names look like '1234 (7).jpg')."))
    parts.append(gallery_html(run, m, gallery_k))
    return "Evaluation", "".join(parts)


# ---- studies ----------------------------------------------------------------------------------------------------


def _robustness(doc: dict[str, Any]) -> str:
    from ..studies.robustness import plot_robustness

    head = {"model": doc.get("model"), "data": doc.get("data"), "split": doc.get("split"), "images": doc.get("n"),
            "images per class": doc.get("counts"), "threshold": doc.get("threshold"), "tta": doc.get("tta"),
            "clean accuracy": (doc.get("clean") or {}).get("accuracy"),
            "clean ROC-AUC": (doc.get("clean") or {}).get("roc_auc")}
    names = {f: v.get("level_name", "level") for f, v in (doc.get("families") or {}).items()}
    rows = [[r.get("family"), None if r.get("level") is None else f"{names.get(r.get('family'), 'level')} "
             f"{r['level']:g}", r.get("accuracy"), r.get("delta_accuracy"), r.get("balanced_accuracy"),
             r.get("roc_auc"), r.get("recall"), r.get("specificity"), r.get("mean_abs_pixel_change")]
            for r in doc.get("results", [])]
    return (kv_table(head) + _figs([_rendered(plot_robustness, doc, "Accuracy and ROC-AUC under each perturbation")])
            + "<h3>Accuracy per perturbation</h3>"
            + table(["perturbation", "level", "accuracy", "Δ accuracy vs clean", "balanced acc", "ROC-AUC",
                     "FAKE detected (recall)", "REAL passed (specificity)", "mean |Δpixel|"], rows))


def _plain(v: Any, spec: str = ".4f") -> str:
    """A number as text for a cell that ``table`` escapes itself (``fmt`` would escape twice)."""
    return "—" if v is None else format(float(v), spec)


def _evasion(doc: dict[str, Any]) -> str:
    from ..studies.evasion import plot_evasion

    ft = doc.get("finetune") or {}
    head = {"model": doc.get("model"), "data": doc.get("data"), "attacked FAKE images": doc.get("n_fake"),
            "test images": doc.get("n_test"), "PGD steps": doc.get("steps"), "tta": doc.get("tta"),
            "fine-tuning": f"{ft.get('epochs')} epoch(s) at ε {_plain(ft.get('eps_255'), 'g')}/255, "
                           f"lr {ft.get('lr')}, {ft.get('n_train')} images",
            "clean accuracy before → after fine-tuning": "{} → {}".format(
                _plain((doc.get("clean_cost") or {}).get("acc_all_before")),
                _plain((doc.get("clean_cost") or {}).get("acc_all_after"))),
            "fine-tuned checkpoint": doc.get("finetuned_checkpoint")}
    rows = []
    for when in ("before", "after"):
        res = doc.get(when) or {}
        clean = res.get("clean") or {}
        rows.append([when, "clean", 0, clean.get("acc_fake"), clean.get("acc_all"), 0.0])
        for method in ("fgsm", "pgd"):
            rows += [[when, method.upper(), r.get("eps_255"), r.get("acc_fake"), r.get("acc_all"),
                      None if r.get("linf") is None else r["linf"] * 255] for r in res.get(method, [])]
    rec = [[r.get("eps_255"), r.get("pgd_acc_fake_before"), r.get("pgd_acc_fake_after"), r.get("gain")]
           for r in doc.get("recovery", [])]
    return (kv_table(head) + _figs([_rendered(plot_evasion, doc, "Accuracy under FGSM / PGD evasion")])
            + "<h3>Accuracy under attack (FAKE images attacked toward REAL)</h3>"
            + table(["fine-tuning", "attack", "ε (/255)", "accuracy on FAKE", "accuracy on all",
                     "max L∞ (/255)"], rows)
            + "<h3>Recovery by adversarial fine-tuning (PGD)</h3>"
            + table(["ε (/255)", "accuracy on FAKE before", "after", "gain"], rec))


def _learning_curve(doc: dict[str, Any]) -> str:
    from ..studies.learning_curve import plot_learning_curve

    head = {"data": doc.get("data"), "test data": doc.get("test_data"), "architecture": doc.get("arch"),
            "epochs": doc.get("epochs"), "sizes (images per class)": doc.get("sizes"), "seeds": doc.get("seeds"),
            "test images": doc.get("n_test"), "training images per class": doc.get("train_counts"),
            "other training settings": doc.get("train_overrides") or None}
    summ = [[r.get("size"), r.get("effective_per_class"), r.get("n_runs"), r.get("accuracy_mean"),
             r.get("accuracy_std"), r.get("roc_auc_mean"), r.get("roc_auc_std"), r.get("train_seconds_mean")]
            for r in doc.get("summary", [])]
    runs = [[r.get("size"), r.get("seed"), r.get("accuracy"), r.get("accuracy_ci95"), r.get("roc_auc"),
             r.get("val_acc"), r.get("train_seconds")] for r in doc.get("runs", [])]
    return (kv_table({k: v for k, v in head.items() if v is not None})
            + _figs([_rendered(plot_learning_curve, doc, "Test accuracy and ROC-AUC against training-set size")])
            + "<h3>Mean over seeds</h3>"
            + table(["images per class", "effective", "runs", "accuracy mean", "accuracy std", "ROC-AUC mean",
                     "ROC-AUC std", "train seconds (mean)"], summ)
            + "<h3>Every run</h3>"
            + table(["images per class", "seed", "accuracy", "accuracy 95% CI", "ROC-AUC", "val acc",
                     "train seconds"], runs))


STUDIES: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "robustness": ("Robustness study", _robustness),
    "evasion": ("Evasion study", _evasion),
    "learning_curve": ("Learning curve", _learning_curve),
}


def study_section(path: Path, doc: dict[str, Any]) -> tuple[str, str]:
    """A known study's plot (re-drawn by its ``plot_*`` function) and tables; any other study as key/values."""
    kind = str(doc.get("study"))
    src = f'<p class="muted">from {esc(path.name)}</p>'
    if kind in STUDIES:
        title, render = STUDIES[kind]
        try:
            return title, src + render(doc)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            return title, src + note(f"{path.name} could not be rendered ({type(e).__name__}: {e}); its numbers:") \
                + kv_table({k: v for k, v in doc.items() if not isinstance(v, (dict, list))})
    scalars = {k: v for k, v in doc.items() if not isinstance(v, (dict, list))}
    return f"Study ({kind})", src + note(f"unknown study type {kind!r}: its top-level values") + kv_table(scalars)
