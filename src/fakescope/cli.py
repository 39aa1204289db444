"""The ``fakescope`` command line: a thin layer over the Python API (``fakescope.api``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .models import list_models


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a detector or classifier")
    p.add_argument("--task", choices=["synthetic", "adversarial", "classify"])
    p.add_argument("--data", help="CIFAKE layout, two-class folder, class folders, .npz or file list")
    p.add_argument("--arch", choices=list_models())
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
    p.add_argument("--image-size", type=int, dest="image_size")
    p.add_argument("--width", type=int, help="architecture width (fast/best)")
    p.add_argument("--val-fraction", type=float, dest="val_fraction")
    p.add_argument("--train-limit", type=int, dest="train_limit", help="max training images per class")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--resume", action="store_true", default=None)
    p.add_argument("--quiet", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fakescope", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    args = parser.parse_args(argv)
    if args.command == "train":
        from .config import resolve_config
        from .train import fit

        flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "quiet", "width")}
        if args.width:
            flags["arch_kwargs"] = {"width": args.width}
        cfg = resolve_config(args.config, **flags)
        metrics = fit(cfg, quiet=args.quiet)
        print(f"saved {cfg.out}/model.safetensors (+.json); validation accuracy {metrics['val_acc']:.4f}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
