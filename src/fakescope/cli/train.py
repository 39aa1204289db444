"""``fakescope train`` options."""

from __future__ import annotations

import argparse
import os

from .lazy import Lazy, model_names


def _default(name: str) -> str:
    """``(default X)`` with ``TrainConfig``'s default for field ``name`` (the flags default to None: given or not)."""
    from ..training.config import TrainConfig  # no torch: the module imports it only to validate a config

    value = TrainConfig.__dataclass_fields__[name].default
    return f"(default {value})"


def add_train(sub: argparse._SubParsersAction) -> None:  # long: one flag per TrainConfig field
    p = sub.add_parser("train", help="train a detector or classifier",
                       description="Train a detector or classifier. Precedence: defaults, then --config, then flags; "
                       "with --resume the run's own config.json instead of the defaults.")
    d = _default
    p.add_argument("--task", choices=["synthetic", "adversarial", "classify"],
                   help=f"synthetic: REAL/FAKE; adversarial: clean/attacked; classify: class folders {d('task')}")
    p.add_argument("--data", help="CIFAKE layout, two-class folder, class folders, .npz or file list; "
                   "--task adversarial: an attack folder (fakescope attack --out) or a folder of them")
    p.add_argument("--arch", choices=Lazy(model_names), metavar="ARCH", help=f"architecture: %(choices)s {d('arch')}")
    p.add_argument("--config", help="JSON or TOML config file (flags override it)")
    p.add_argument("--out", help=f"run folder {d('out')}")
    p.add_argument("--epochs", type=int, help=f"passes over the training images {d('epochs')}; with --resume, more "
                   "than the run had extends it")
    p.add_argument("--batch-size", type=int, dest="batch_size", help=f"images per step {d('batch_size')}")
    p.add_argument("--lr", type=float, help=f"peak learning rate {d('lr')}")
    p.add_argument("--optimizer", choices=["sgd", "adam"], help=f"sgd: Nesterov momentum 0.9 {d('optimizer')}")
    p.add_argument("--schedule", choices=["onecycle", "constant"],
                   help=f"onecycle: warm-up then cosine decay {d('schedule')}")
    p.add_argument("--weight-decay", type=float, dest="weight_decay",
                   help=f"L2 penalty on weights (not biases or norms) {d('weight_decay')}")
    p.add_argument("--label-smoothing", type=float, dest="label_smoothing", help=d("label_smoothing"))
    p.add_argument("--no-flip", action="store_false", dest="flip", default=None,
                   help="no random horizontal flips of training images (default: flip)")
    p.add_argument("--translate", type=int, metavar="PIXELS",
                   help=f"shift training images by up to PIXELS in x and y (reflect padding) {d('translate')}")
    p.add_argument("--augment", choices=["none", "robust", "negatives"],
                   help="robust: also degrade half the training images (random JPEG, blur, noise, rescale); "
                   f"negatives: degrade only label-0 images (adversarial detectors: processed clean images) "
                   f"{d('augment')}")
    p.add_argument("--no-tta", action="store_false", dest="tta", default=None,
                   help="do not average with the horizontal flip at inference (2x faster scans; default: average)")
    p.add_argument("--image-size", type=int, dest="image_size", help=f"square input side in pixels {d('image_size')}")
    p.add_argument("--width", type=int, help="architecture width (fast: 24, best: 32, srm-cnn: 16 by default)")
    p.add_argument("--val-fraction", type=float, dest="val_fraction",
                   help=f"share of the training data held out to validate and calibrate {d('val_fraction')}")
    p.add_argument("--train-limit", type=int, dest="train_limit",
                   help="at most this many training images per class, a seeded choice; only those are decoded "
                   "(default 0: all)")
    p.add_argument("--seed", type=int, help=f"seed of initialisation, shuffling and --train-limit {d('seed')}")
    p.add_argument("--split-seed", type=int, dest="split_seed",
                   help="seed of the validation split (default --seed); keep it equal for models to be ensembled")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help=f"auto: CUDA when available {d('device')}")
    p.add_argument("--amp", choices=["auto", "bf16", "off"],
                   help=f"bf16 autocast: auto = CUDA only; bf16 = also on CPUs with AMX/AVX-512-BF16 {d('amp')}")
    p.add_argument("--threads", type=int, help="torch threads (default 0: torch's own choice)")
    p.add_argument("--workers", type=int, help="decode processes (default 0: one per CPU, at most 8)")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start from this checkpoint's weights (bundled name or model.json; same architecture and "
                        "classes): fine-tuning")
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue the run in --out from its last complete epoch, with its saved config.json; a "
                   "flag that would change the data or the split is refused (--epochs, --threads, --workers, "
                   "--device, --amp may change, and are recorded)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
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
    p.add_argument("--out", required=True, help="folder for the ensemble checkpoint (model.json + .safetensors)")
    p.set_defaults(run=run_ensemble)


def run_ensemble(args: argparse.Namespace) -> int:
    """``fakescope ensemble``."""
    from ..training.ensemble import build_ensemble

    r = build_ensemble(args.models, args.data, args.out, tta=args.tta)
    print(f"written: {r['checkpoint']}" + (f" (test accuracy {r['test_accuracy']:.4f})" if "test_accuracy" in r
                                           else ""))
    return 0
