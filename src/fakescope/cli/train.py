"""``fakescope train`` options."""

from __future__ import annotations

import argparse

from .lazy import _Lazy, _models


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a detector or classifier")
    p.add_argument("--task", choices=["synthetic", "adversarial", "classify"])
    p.add_argument("--data", help="CIFAKE layout, two-class folder, class folders, .npz or file list; "
                   "--task adversarial: an attack folder (fakescope attack --out) or a folder of them")
    p.add_argument("--arch", choices=_Lazy(_models), metavar="ARCH", help="architecture: %(choices)s")
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
