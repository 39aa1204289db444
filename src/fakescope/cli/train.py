"""``fakescope train`` options."""

from __future__ import annotations

import argparse
import os

from .lazy import Lazy, model_names


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a detector or classifier")
    p.add_argument("--task", choices=["synthetic", "adversarial", "classify"])
    p.add_argument("--data", help="CIFAKE layout, two-class folder, class folders, .npz or file list; "
                   "--task adversarial: an attack folder (fakescope attack --out) or a folder of them")
    p.add_argument("--arch", choices=Lazy(model_names), metavar="ARCH", help="architecture: %(choices)s")
    p.add_argument("--config", help="JSON or TOML config file (flags override it)")
    p.add_argument("--out", help="run folder (default runs/train)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=["sgd", "adam"])
    p.add_argument("--schedule", choices=["onecycle", "constant"])
    p.add_argument("--weight-decay", type=float, dest="weight_decay")
    p.add_argument("--label-smoothing", type=float, dest="label_smoothing")
    p.add_argument("--no-flip", action="store_false", dest="flip", default=None)
    p.add_argument("--translate", type=int, metavar="PIXELS",
                   help="shift training images by up to PIXELS in x and y (reflect padding; default 0)")
    p.add_argument("--augment", choices=["none", "robust", "negatives"],
                   help="robust: also degrade half the training images (random JPEG, blur, noise, rescale); "
                   "negatives: degrade only label-0 images (adversarial detectors: processed clean images)")
    p.add_argument("--no-tta", action="store_false", dest="tta", default=None,
                   help="do not average with the horizontal flip at inference (2x faster scans)")
    p.add_argument("--image-size", type=int, dest="image_size")
    p.add_argument("--width", type=int, help="architecture width (fast/best)")
    p.add_argument("--val-fraction", type=float, dest="val_fraction")
    p.add_argument("--train-limit", type=int, dest="train_limit", help="max training images per class")
    p.add_argument("--seed", type=int)
    p.add_argument("--split-seed", type=int, dest="split_seed",
                   help="seed of the validation split (default --seed); keep it equal for models to be ensembled")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", choices=["auto", "bf16", "off"],
                   help="bf16 autocast: auto = CUDA only; bf16 = also on CPUs with AMX/AVX-512-BF16")
    p.add_argument("--threads", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--resume", action="store_true", default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    """``fakescope train``: defaults, then ``--config``, then flags; prints where the model went."""
    from ..training.config import resolve_config
    from ..training.loop import fit

    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "quiet", "width", "run")}
    if args.width:
        flags["arch_kwargs"] = {"width": args.width}
    cfg = resolve_config(args.config, **flags)
    metrics = fit(cfg, quiet=args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the job
        print(f"saved {cfg.out}/model.safetensors (+ .json); validation accuracy {metrics['val_acc']:.4f}")
    return 0


def add_ensemble(sub: argparse._SubParsersAction) -> None:
    """The ``fakescope ensemble`` sub-command."""
    p = sub.add_parser("ensemble", help="one calibrated checkpoint averaging several trained models (same "
                       "validation split: train extra members with --split-seed)")
    p.add_argument("models", nargs="+", help="bundled names or checkpoint paths (at least 2)")
    p.add_argument("--data", required=True, help="the data the members trained on (validation split) with test/")
    p.add_argument("--no-tta", dest="tta", action="store_false", help="no flip averaging")
    p.add_argument("--out", required=True)
    p.set_defaults(run=run_ensemble)


def run_ensemble(args: argparse.Namespace) -> int:
    """``fakescope ensemble``."""
    from ..training.ensemble import build_ensemble

    r = build_ensemble(args.models, args.data, args.out, tta=args.tta)
    print(f"written: {r['checkpoint']}" + (f" (test accuracy {r['test_accuracy']:.4f})" if "test_accuracy" in r
                                           else ""))
    return 0
