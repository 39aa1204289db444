"""Plots (matplotlib, Agg backend): training curves, ROC, PR, confusion matrix, reliability diagram."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io import save_figure  # noqa: E402


def plot_history(history: list[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """Loss and accuracy per epoch (train and validation) from ``history.jsonl`` records."""
    ep = [r for r in history if r.get("kind") == "epoch"]
    if not ep:
        return
    x = [r["epoch"] for r in ep]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(x, [r["train_loss"] for r in ep], "o-", label="train")
    a1.plot(x, [r["val_loss"] for r in ep], "o-", label="validation")
    a1.set(xlabel="epoch", ylabel="loss", title="Loss")
    a2.plot(x, [r["train_acc"] for r in ep], "o-", label="train")
    a2.plot(x, [r["val_acc"] for r in ep], "o-", label="validation")
    a2.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


@contextlib.contextmanager
def _figure(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
    """``plt.subplots(*args, **kwargs)``; on success lays out and saves to ``path`` atomically; always closes."""
    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)


def plot_roc(fpr: Sequence[float], tpr: Sequence[float], path: str | os.PathLike[str], auc: float | None = None,
             points: Mapping[str, float | None] | None = None) -> None:
    """ROC curve; ``points`` ({"0.01": tpr, ...}) marks TPR at fixed false-positive rates."""
    with _figure(path, figsize=(4.5, 4.5)) as (_fig, ax):
        ax.plot(fpr, tpr, lw=1.8, label="model" if auc is None else f"model (AUC {auc:.4f})")
        ax.plot([0, 1], [0, 1], ls="--", lw=1, color="grey", label="chance")
        for key, t in (points or {}).items():
            if t is not None:
                ax.plot([float(key)], [t], "o", label=f"TPR {t:.3f} @ FPR {float(key):g}")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)


def plot_pr(recall: Sequence[float], precision: Sequence[float], path: str | os.PathLike[str],
            ap: float | None = None, prevalence: float | None = None) -> None:
    """Precision-recall curve; ``prevalence`` (share of label 1) draws the chance level."""
    with _figure(path, figsize=(4.5, 4.5)) as (_fig, ax):
        ax.step(recall, precision, where="post", lw=1.8, label="model" if ap is None else f"model (AP {ap:.4f})")
        if prevalence is not None:
            ax.axhline(prevalence, ls="--", lw=1, color="grey", label=f"chance ({prevalence:.2f})")
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.01))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)


def plot_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str | os.PathLike[str]) -> None:
    """Confusion matrix (rows: true class, columns: predicted), counts and row percentages."""
    m = np.asarray(matrix, np.int64)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, np.float64), where=rows > 0)
    k = len(class_names)
    side = max(3.8, 0.6 * k + 2)
    small = k > 6
    with _figure(path, figsize=(side, side * 0.9)) as (fig, ax):
        im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
        ax.set_xticks(range(k), class_names, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
        ax.set_yticks(range(k), class_names)
        ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
        for i in range(k):
            for j in range(k):
                txt = f"{m[i, j]}" if small else f"{m[i, j]}\n{share[i, j]:.1%}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=7 if small else 9,
                        color="white" if share[i, j] > 0.5 else "black")


def plot_reliability(bins: Mapping[str, Any], path: str | os.PathLike[str], ece: float | None = None,
                     xlabel: str = "predicted P(label 1)", ylabel: str = "observed frequency of label 1") -> None:
    """Reliability diagram from ``metrics.reliability_bins`` output, with the count per bin below."""
    centers = np.asarray(bins["centers"], np.float64)
    acc = np.asarray(bins["accuracy"], np.float64)
    conf = np.asarray(bins["confidence"], np.float64)
    counts = np.asarray(bins["counts"], np.int64)
    width = float(centers[1] - centers[0]) if len(centers) > 1 else 1.0
    ok = counts > 0
    with _figure(path, 2, 1, figsize=(4.5, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}) as (_f, axes):
        a1, a2 = axes
        a1.bar(centers[ok], acc[ok], width=width * 0.9, alpha=0.7, edgecolor="black", label="observed")
        a1.plot(conf[ok], acc[ok], "o", ms=3, color="black", label="mean prediction per bin")
        a1.plot([0, 1], [0, 1], ls="--", lw=1, color="grey", label="perfect calibration")
        a1.set(ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.01),
               title="Reliability" if ece is None else f"Reliability (ECE {ece:.4f})")
        a1.grid(alpha=0.3)
        a1.legend(loc="upper left", fontsize=8)
        a2.bar(centers, counts, width=width * 0.9, color="grey")
        if counts.max(initial=0) > 0:
            a2.set_yscale("log")
        a2.set(xlabel=xlabel, ylabel="count")


def plot_per_class(per_class: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str],
                   overall: float | None = None, title: str = "Accuracy per class") -> None:
    """Horizontal bars of ``{name: {"n": k, "accuracy": a}}``, annotated with accuracy and count."""
    names = list(per_class)
    acc = [float(per_class[n]["accuracy"]) for n in names]
    y = np.arange(len(names))
    with _figure(path, figsize=(6, 0.35 * len(names) + 1.5)) as (_fig, ax):
        ax.barh(y, acc, color="tab:blue", alpha=0.8)
        for i, n in enumerate(names):
            ax.text(acc[i] + 0.01, i, f"{acc[i]:.1%} (n={per_class[n]['n']})", va="center", fontsize=8)
        if overall is not None:
            ax.axvline(overall, ls="--", color="grey", lw=1, label=f"overall {overall:.1%}")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_xticks(np.linspace(0, 1, 6))
        ax.set(xlim=(0, 1.25), xlabel="accuracy", title=title)
        ax.grid(alpha=0.3, axis="x")
