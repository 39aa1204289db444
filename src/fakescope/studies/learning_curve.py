"""Learning curve: test accuracy and ROC-AUC against the number of training images per class, over seeds.

Each (size, seed) trains into ``out/size-{n}-seed-{s}`` with ``fit`` on the train split loaded once, then is
evaluated on the test split. The study is resumable: a run with ``model.json`` and ``test_metrics.json`` is
read back, a run with a checkpoint but no test metrics is only evaluated, an interrupted run is resumed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data import ImageSet, load_dataset
from ..evaluation.evaluate import evaluate_arrays
from ..io import read_jsonl, write_json
from ..models import load_checkpoint
from ..training.config import TrainConfig
from .common import finite_or_none, has_test_split, new_figure, save

DEFAULT_SIZES = (500, 1000, 2000, 5000, 10000, 20000, 45000)
METRICS_FILE = "test_metrics.json"
_RESERVED = {"out", "train_limit", "seed", "resume", "data"}


def run_dir(out: str | os.PathLike[str], size: int, seed: int) -> Path:
    return Path(out) / f"size-{size}-seed-{seed}"


# settings a finished or interrupted run must share with the study's request before it is reused
_SAME = ("task", "arch", "arch_kwargs", "image_size", "epochs", "batch_size", "optimizer", "lr", "schedule", "warmup",
         "weight_decay", "label_smoothing", "flip", "augment", "val_fraction", "train_limit", "seed", "tta")


def _check_reusable(run: Path, cfg: TrainConfig) -> None:
    """Refuse to read back (or resume) a run folder trained with other settings than ``cfg``."""
    try:
        saved = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return
    want, defaults = cfg.to_dict(), TrainConfig().to_dict()
    diff = [k for k in _SAME if saved.get(k, defaults[k]) != want[k]]
    if diff:
        what = ", ".join(f"{k} {saved.get(k)!r} (asked {want[k]!r})" for k in diff)
        raise ValueError(f"{run} was trained with other settings: {what}; use another --out for this learning curve")


def _train_and_test(cfg: TrainConfig, train: ImageSet, test: ImageSet, n_boot: int, quiet: bool) -> dict[str, Any]:
    from ..training.loop import fit  # lazy: training may import studies.perturb

    run = Path(cfg.out)
    _check_reusable(run, cfg)
    if (run / "model.json").exists() and (run / METRICS_FILE).exists():
        return json.loads((run / METRICS_FILE).read_text())
    if not (run / "model.json").exists():
        fit(dataclasses.replace(cfg, resume=(run / "last.json").exists()), dataset=train, quiet=quiet)
    net, meta = load_checkpoint(run / "model.json")
    tta = net.spec.tta
    m = evaluate_arrays(net, test, tta=tta, n_boot=n_boot)
    epochs = [r for r in read_jsonl(run / "history.jsonl") if r.get("kind") == "epoch"]
    per_class = min(cfg.train_limit, *train.counts().values()) if cfg.train_limit else min(train.counts().values())
    rec = {"size": cfg.train_limit, "seed": cfg.seed, "effective_per_class": per_class, "dir": str(run),
           "accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"],
           "roc_auc": finite_or_none(m.get("roc_auc")), "accuracy_ci95": m.get("accuracy_ci95"),
           "val_acc": meta.get("metrics", {}).get("val_acc"), "n_test": m["n"],
           "train_seconds": float(sum(r.get("seconds", 0.0) for r in epochs)), "test_metrics": m}
    write_json(run / METRICS_FILE, rec)
    return rec


def _summary(runs: list[dict[str, Any]], sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        rs = [r for r in runs if r["size"] == size]
        if not rs:
            continue
        row: dict[str, Any] = {"size": size, "n_runs": len(rs), "seeds": [r["seed"] for r in rs],
                               "effective_per_class": rs[0]["effective_per_class"]}
        for key in ("accuracy", "balanced_accuracy", "roc_auc", "train_seconds"):
            v = np.array([r[key] for r in rs if r.get(key) is not None], np.float64)
            row[f"{key}_mean"] = float(v.mean()) if len(v) else None
            row[f"{key}_std"] = float(v.std(ddof=1)) if len(v) > 1 else (0.0 if len(v) else None)
        rows.append(row)
    return rows


def learning_curve(data: str, out: str, sizes: tuple[int, ...] = DEFAULT_SIZES, seeds: tuple[int, ...] = (0, 1, 2),
                   arch: str = "seed-cnn", epochs: int = 5, test_data: str | None = None, n_boot: int = 200,
                   quiet: bool = False, **train_overrides: Any) -> dict[str, Any]:
    """Train ``arch`` for each training size (images per class) and seed, test each, aggregate mean ± std.

    ``train_overrides`` are further ``TrainConfig`` fields (``batch_size``, ``lr``, ``optimizer``...). The test set
    is the ``test`` split of ``data`` (CIFAKE layout) unless ``test_data`` names another source. Writes
    ``out/learning_curve.json`` (after every run, so progress survives a crash) and ``out/learning_curve.png``.
    """
    bad = _RESERVED & set(train_overrides)
    if bad:
        raise ValueError(f"learning_curve sets {sorted(bad)} itself")
    if not sizes or min(sizes) < 1 or not seeds:
        raise ValueError("sizes must be positive image counts per class and seeds non-empty")
    base = TrainConfig(data=str(data), arch=arch, epochs=epochs, **train_overrides)
    if test_data is None and not has_test_split(data):  # else the "test" set would be the training images
        raise ValueError(f"{data}: no train/ and test/ split; pass test_data")
    train = load_dataset(data, base.task, base.image_size, "train", workers=base.workers or None)
    test = load_dataset(test_data or data, base.task, base.image_size, "test", workers=base.workers or None)
    sizes = tuple(sorted(int(s) for s in sizes))
    doc: dict[str, Any] = {"study": "learning_curve", "data": str(data), "test_data": str(test_data or data),
                           "arch": arch, "epochs": epochs, "sizes": list(sizes), "seeds": list(seeds),
                           "train_overrides": dict(train_overrides), "train_counts": train.counts(),
                           "n_test": len(test), "runs": [], "summary": []}
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    for size in sizes:
        for seed in seeds:
            cfg = dataclasses.replace(base, train_limit=size, seed=seed, out=str(run_dir(outdir, size, seed)))
            rec = _train_and_test(cfg, train, test, n_boot, quiet)
            doc["runs"].append({k: v for k, v in rec.items() if k != "test_metrics"})
            doc["summary"] = _summary(doc["runs"], sizes)
            write_json(outdir / "learning_curve.json", doc)
    plot_learning_curve(doc, outdir / "learning_curve.png")
    return doc


def plot_learning_curve(doc: dict[str, Any], path: str | Path) -> None:
    """Mean test accuracy and ROC-AUC (± one std band over seeds) against images per class, log x axis."""
    rows = doc["summary"]
    if not rows:
        return
    fig = new_figure(6.4, 4.2)
    ax = fig.subplots()
    x = np.array([r["size"] for r in rows], np.float64)
    for key, colour, label in (("accuracy", "tab:blue", "accuracy"), ("roc_auc", "tab:orange", "ROC-AUC")):
        mean = np.array([np.nan if r[f"{key}_mean"] is None else r[f"{key}_mean"] for r in rows])
        std = np.array([0.0 if r[f"{key}_std"] is None else r[f"{key}_std"] for r in rows])
        if np.isnan(mean).all():
            continue
        ax.plot(x, mean, "o-", color=colour, label=f"{label} (mean of {max(r['n_runs'] for r in rows)} seeds)")
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2)
        pts = [(r["size"], r[key]) for r in doc["runs"] if r.get(key) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ".", color=colour, alpha=0.5, ms=4)
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{int(s):,}" for s in x])
    ax.minorticks_off()
    ax.set(xlabel="training images per class", ylabel="test score",
           title=f"Learning curve: {doc['arch']}, {doc['epochs']} epoch(s), {doc['n_test']} test images")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    save(fig, path)
