"""Robustness of a detector to everyday image processing: JPEG re-encoding, blur, rescaling, noise.

Every perturbation is applied in memory to the decoded uint8 test images (deterministic for a given seed) and
the checkpoint is evaluated exactly as ``fakescope evaluate`` does (same network, TTA, calibration and
threshold), so the ``clean`` row equals ``evaluate``'s accuracy on the same images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data import ImageSet, load_dataset
from ..data.imageset import subsample_per_class
from ..data.transforms import AUGMENT_OPS, LEVEL_NAMES, PERTURBATIONS, augment_batch, perturb
from ..evaluation.evaluate import evaluate_arrays, predict_probs
from ..io import write_json
from ..models import load_checkpoint
from ..models.net import Net
from .common import finite_or_none, new_figure, save

__all__ = ["AUGMENT_OPS", "PERTURBATIONS", "augment_batch", "perturb", "plot_robustness", "robustness_study"]


def _score(net: Net, ds: ImageSet, tta: bool, n_boot: int) -> dict[str, Any]:
    probs = predict_probs(net, ds, tta)
    m = evaluate_arrays(net, ds, tta=tta, n_boot=n_boot, probs=probs)
    row: dict[str, Any] = {"accuracy": m["accuracy"], "accuracy_ci95": m.get("accuracy_ci95"),
                           "balanced_accuracy": m["balanced_accuracy"], "roc_auc": finite_or_none(m.get("roc_auc"))}
    if np.asarray(probs).ndim == 1:
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        row["recall"] = tp / (tp + fn) if tp + fn else None  # share of label-1 (FAKE) images detected
        row["specificity"] = tn / (tn + fp) if tn + fp else None  # share of label-0 (REAL) images passed
        row["mean_score"] = float(np.mean(probs))
    return row


def robustness_study(model: str, data: str, out: str, split: str = "test", limit: int | None = None, seed: int = 0,
                     families: dict[str, tuple[float, ...]] | None = None, n_boot: int = 200) -> dict[str, Any]:
    """Accuracy and ROC-AUC of ``model`` on ``data`` (``split``) under each perturbation level and clean.

    ``limit``: at most this many images per class (seeded). ``families`` overrides ``PERTURBATIONS``. Writes
    ``out/robustness.json`` and ``out/robustness.png``; returns the JSON document.
    """
    fams = dict(PERTURBATIONS if families is None else families)
    unknown = set(fams) - set(PERTURBATIONS)
    if unknown:
        raise ValueError(f"unknown perturbation families {sorted(unknown)}; choose from {', '.join(PERTURBATIONS)}")
    net, meta = load_checkpoint(model)
    spec = net.spec
    tta = spec.tta
    ds = subsample_per_class(load_dataset(data, task=spec.task, size=spec.image_size, split=split), limit, seed)
    clean = {"family": "clean", "level": None, **_score(net, ds, tta, n_boot)}
    rows = [clean]
    for fam, levels in fams.items():
        for level in levels:
            pert = ImageSet(perturb(ds.images, fam, level, seed), ds.labels, ds.classes, ds.cifar_class, ds.paths,
                            ds.groups, ds.fingerprint)
            row = {"family": fam, "level": level, **_score(net, pert, tta, n_boot)}
            row["delta_accuracy"] = row["accuracy"] - clean["accuracy"]
            row["mean_abs_pixel_change"] = float(np.abs(pert.images.astype(np.int16) - ds.images).mean())
            rows.append(row)
    doc: dict[str, Any] = {
        "study": "robustness", "model": str(model), "data": str(data), "split": split, "limit": limit, "seed": seed,
        "n": len(ds), "counts": ds.counts(), "classes": list(spec.classes), "threshold": spec.threshold, "tta": tta,
        "clean": {k: v for k, v in clean.items() if k not in ("family", "level")},
        "families": {f: {"level_name": LEVEL_NAMES[f], "levels": list(levels)} for f, levels in fams.items()},
        "results": rows,
    }
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    write_json(outdir / "robustness.json", doc)
    plot_robustness(doc, outdir / "robustness.png")
    return doc


def plot_robustness(doc: dict[str, Any], path: str | Path) -> None:
    """One panel per perturbation family: accuracy and ROC-AUC from clean to the most severe level."""
    fams = list(doc["families"])
    if not fams:
        return
    clean = doc["clean"]
    fig = new_figure(3.2 * len(fams), 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(fams), sharey=True))
    for ax, fam in zip(axes, fams, strict=True):
        rows = [r for r in doc["results"] if r["family"] == fam]
        labels = ["clean"] + [f"{r['level']:g}" for r in rows]
        x = np.arange(len(labels))
        acc = [clean["accuracy"]] + [r["accuracy"] for r in rows]
        auc = [clean.get("roc_auc")] + [r.get("roc_auc") for r in rows]
        ax.plot(x, acc, "o-", color="tab:blue", label="accuracy")
        if any(a is not None for a in auc):
            ax.plot(x, [np.nan if a is None else a for a in auc], "s--", color="tab:orange", label="ROC-AUC")
        ax.axhline(clean["accuracy"], color="grey", lw=0.8, ls=":")
        ax.set_xticks(x, labels)
        ax.set(title=fam, xlabel=doc["families"][fam]["level_name"], ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"Robustness of {Path(str(doc['model'])).name} ({doc['n']} {doc['split']} images)", fontsize=10)
    save(fig, path)
