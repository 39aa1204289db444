"""Plots (matplotlib, Agg backend): training curves, ROC, PR, confusion matrix, reliability diagram."""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .io import save_figure  # noqa: E402


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
