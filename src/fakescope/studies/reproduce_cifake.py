"""``fakescope reproduce cifake``: the seed notebook's protocol, then the same model on all data, then ours.

Seed protocol: seed-cnn, ~5,000 REAL + ~5,000 FAKE training images, 4,000 test images (2,000 per class),
batch 32, Adam 1e-3, binary cross-entropy, 5 epochs, no augmentation, verdict at 0.5. The seed reported 85.5%.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data import ImageSet, load_dataset
from ..inference.predict import predict_logits
from ..io import write_json
from ..progress import printer
from ..training.config import TrainConfig

SEED_REPORTED = {"cifake": 0.855}


def seed_config(out: Path, seed: int, train_limit: int) -> TrainConfig:
    return TrainConfig(task="synthetic", arch="seed-cnn", epochs=5, batch_size=32, optimizer="adam", lr=1e-3,
                       schedule="constant", weight_decay=0.0, label_smoothing=0.0, flip=False, tta=False,
                       val_fraction=0.05, train_limit=train_limit, seed=seed, out=str(out), log_every=100)


def _test_subset(test: ImageSet, per_class: int, seed: int) -> ImageSet:
    rng = np.random.default_rng(seed)
    idx = [rng.permutation(np.flatnonzero(test.labels == c))[:per_class] for c in range(len(test.classes))]
    return test.subset(np.sort(np.concatenate(idx)))


def _accuracy_at_half(net: Any, ds: ImageSet, tta: bool = False) -> float:
    z = predict_logits(net, ds.images, tta=tta)
    return float(((z > 0).astype(np.int64) == ds.labels).mean())


def reproduce_cifake(data: str, out: str = "runs/reproduce-cifake", seeds: int = 3, full: bool = True,
                     best_model: str = "best", quiet: bool = False) -> dict[str, Any]:
    """Run the three steps; writes ``out/reproduce.json`` and returns the figures."""
    from ..evaluation.evaluate import evaluate_arrays
    from ..inference.scorer import Detector
    from ..training.loop import fit

    say = printer(quiet)
    root = Path(out)
    train = load_dataset(data, "synthetic", 32, "train")
    test = load_dataset(data, "synthetic", 32, "test")
    test4k = _test_subset(test, 2000, 0)
    result: dict[str, Any] = {"seed_reported_accuracy": SEED_REPORTED["cifake"], "data": data}

    accs = []
    for s in range(seeds):
        say(f"[1/3] seed protocol, seed {s}: seed-cnn, 5,000 + 5,000 images, batch 32, Adam 1e-3, 5 epochs")
        from ..models import load_checkpoint

        fit(seed_config(root / f"seed-protocol-{s}", s, 5000), dataset=train, quiet=quiet)
        net, _ = load_checkpoint(root / f"seed-protocol-{s}" / "model.json")
        accs.append(_accuracy_at_half(net, test4k))
        say(f"      test accuracy (4,000 images, threshold 0.5): {accs[-1]:.4f}")
    result["seed_protocol"] = {"accuracy_per_seed": accs, "mean": float(np.mean(accs)),
                               "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                               "test_images": len(test4k), "train_images_per_class": 5000}
    if full:
        say("[2/3] the same model and recipe on all 90,000 training images")
        fit(seed_config(root / "seed-cnn-all-data", 0, 0), dataset=train, quiet=quiet)
        net, meta = load_checkpoint(root / "seed-cnn-all-data" / "model.json")
        m = evaluate_arrays(net, test, tta=False, n_boot=1000)
        result["seed_cnn_all_data"] = {"accuracy_at_0.5": _accuracy_at_half(net, test), "metrics": m}
    say(f"[3/3] our model: {best_model}")
    det = Detector.load(best_model)
    m = evaluate_arrays(det.net, test, tta=det.tta, n_boot=1000)
    result["ours"] = {"model": best_model, "metrics": m, "trained_with": det.meta.get("train_config")}
    write_json(root / "reproduce.json", result)
    return result


def format_reproduce(r: dict[str, Any]) -> str:
    sp = r["seed_protocol"]
    lines = ["CIFAKE: real vs Stable Diffusion 1.4 (test images never seen in training)",
             f"  {'step':52s} {'seed notebook':>14s} {'fakescope':>20s}",
             f"  {'1. seed protocol (seed-cnn, 10k train, 4k test)':52s} {r['seed_reported_accuracy']:>14.1%} "
             f"{sp['mean']:>12.2%} ± {sp['std']:.2%}"]
    if "seed_cnn_all_data" in r:
        m = r["seed_cnn_all_data"]["metrics"]
        lines.append(f"  {'2. same model, all 90k training images':52s} {'':>14s} {m['accuracy']:>20.2%}")
    m = r["ours"]["metrics"]
    lo, hi = m["accuracy_ci95"]
    lines.append(f"  {'3. ours: ' + r['ours']['model']:52s} {'':>14s} {m['accuracy']:>20.2%}"
                 f"  (95% CI {lo:.2%}–{hi:.2%}, ROC-AUC {m['roc_auc']:.4f})")
    return "\n".join(lines)
