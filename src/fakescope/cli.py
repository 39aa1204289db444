"""The ``fakescope`` command line: a thin layer over the Python API. Exit codes: 0 ok, 1 some files failed,
2 usage or input error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .models import list_bundled, list_models


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
    p.add_argument("--no-tta", action="store_false", dest="tta", default=None,
                   help="do not average with the horizontal flip at inference (2x faster scans)")
    p.add_argument("--image-size", type=int, dest="image_size")
    p.add_argument("--width", type=int, help="architecture width (fast/best)")
    p.add_argument("--val-fraction", type=float, dest="val_fraction")
    p.add_argument("--train-limit", type=int, dest="train_limit", help="max training images per class")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", choices=["auto", "bf16", "off"],
                   help="bf16 autocast: auto = CUDA only; bf16 = also on CPUs with AMX/AVX-512-BF16")
    p.add_argument("--threads", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--resume", action="store_true", default=None)
    p.add_argument("--quiet", action="store_true")


def _add_scan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="verdicts for files, folders and globs")
    p.add_argument("paths", nargs="+", help="files, folders (recursive) or glob patterns")
    p.add_argument("--model", action="append", help=f"bundled name ({', '.join(list_bundled())}) or checkpoint "
                   "path; repeat to run several models (e.g. both tasks) in one scan")
    p.add_argument("--task", choices=["synthetic", "adversarial", "both"],
                   help="pick the bundled model(s) for a task when --model is not given")
    p.add_argument("--threshold", type=float, help="override the calibrated threshold")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON lines on stdout instead of the table")
    fmt.add_argument("--csv", action="store_true", help="CSV on stdout instead of the table")
    p.add_argument("--output", help="append rows to this .jsonl as the scan goes (see --resume)")
    p.add_argument("--resume", action="store_true", help="skip files already in --output")
    p.add_argument("--save", action="append", default=[], help="also write all rows to FILE (.csv or .json[l])")
    p.add_argument("--max-rows", type=int, default=60, help="rows shown in the table (all go to files)")
    p.add_argument("--workers", type=int, help="decode processes (default: 2 for big scans)")
    p.add_argument("--chunk", type=int, default=512, help="files decoded and written per step")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fakescope", description="Detect AI-generated and adversarial images.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_scan(sub)
    p = sub.add_parser("demo", help="scan the bundled sample images with the bundled models")
    p.add_argument("--model", default="fast")
    p.add_argument("--out", default="fakescope-demo", help="folder for results.jsonl and results.csv")
    p = sub.add_parser("evaluate", help="metrics and plots of a model on a labelled dataset")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", help="split of a CIFAKE-layout folder (default test)")
    p.add_argument("--out", help="folder for metrics.json, predictions.csv and plots")
    p.add_argument("--threshold", type=float)
    p.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    p = sub.add_parser("reproduce", help="reproduce the seed notebook's experiments")
    p.add_argument("experiment", choices=["cifake"])
    p.add_argument("--data", required=True, help="the CIFAKE folder (train/ and test/)")
    p.add_argument("--out", default="runs/reproduce-cifake")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--no-full", action="store_false", dest="full", help="skip training seed-cnn on all data")
    p.add_argument("--best-model", default="best")
    p = sub.add_parser("explain", help="Grad-CAM and Integrated Gradients overlays with the verdict")
    p.add_argument("images", nargs="+")
    p.add_argument("--model", default="fast")
    p.add_argument("--out", default="explain")
    p.add_argument("--method", action="append", choices=_explainers(), help="repeat for several (default: all)")
    p.add_argument("--upscale", type=int, default=8, help="pixel size of the 32x32 input in the PNG")
    p = sub.add_parser("attack", help="attack a victim classifier's images (ART + batched torch attacks)")
    p.add_argument("--victim", required=True, help="a classify checkpoint (fakescope train --task classify)")
    p.add_argument("--data", required=True, help="class folders (CIFAR-10 layout) or .npz with images+labels")
    p.add_argument("--attack", required=True, choices=_attacks())
    p.add_argument("--eps", type=float, action="append", help="L-inf ε in 0..255 units (e.g. 8); repeat to sweep")
    p.add_argument("--n", type=int, default=1000, help="images to attack")
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    sub.add_parser("models", help="list architectures and bundled checkpoints")
    p = sub.add_parser("info", help="describe a checkpoint")
    p.add_argument("model")
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as e:
        print(f"fakescope {args.command}: error: {e}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "train":
        from .config import resolve_config
        from .training import fit

        flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "quiet", "width")}
        if args.width:
            flags["arch_kwargs"] = {"width": args.width}
        cfg = resolve_config(args.config, **flags)
        metrics = fit(cfg, quiet=args.quiet)
        print(f"saved {cfg.out}/model.safetensors (+ .json); validation accuracy {metrics['val_acc']:.4f}")
        return 0
    if args.command == "scan":
        from .commands import run_scan

        models = args.model or _task_models(args.task)
        return run_scan(args.paths, models, threshold=args.threshold, as_json=args.json, as_csv=args.csv,
                        output=args.output, resume=args.resume, save=args.save, max_rows=args.max_rows,
                        workers=args.workers, chunk=args.chunk)
    if args.command == "demo":
        from .commands import run_demo

        return run_demo(args.model, args.out)
    if args.command == "evaluate":
        from .evaluation import evaluate, format_metrics

        m = evaluate(args.model, args.data, out=args.out, split=args.split, threshold=args.threshold)
        print(json.dumps(m, indent=2) if args.json else format_metrics(m))
        return 0
    if args.command == "reproduce":
        from .reproduce import format_reproduce, reproduce_cifake

        r = reproduce_cifake(args.data, args.out, seeds=args.seeds, full=args.full, best_model=args.best_model)
        print(format_reproduce(r))
        print(f"\nwritten: {Path(args.out) / 'reproduce.json'}")
        return 0
    if args.command == "explain":
        from .explain import explain

        results = explain(args.images, model=args.model, out=args.out, methods=args.method, upscale=args.upscale)
        for r in results:
            print(f"{r['path']}: " + (f"error: {r['error']}" if r["error"] else f"{r['label']} {r['score']:.3f} "
                                      f"-> {r['png']}"))
        print(f"written: {Path(args.out) / 'explanations.json'}")
        return 1 if any(r["error"] for r in results) else 0
    if args.command == "attack":
        from .adversarial.pipeline import attack_dataset

        eps = [e / 255.0 for e in args.eps] if args.eps else [None]
        for r in attack_dataset(args.victim, args.data, args.attack, eps, args.n, args.out, args.split, args.seed):
            print(f"{r['folder']}: clean acc {r['clean_accuracy']:.4f} -> {r['adversarial_accuracy']:.4f} under "
                  f"attack, success {r['success_rate']:.4f}, mean Linf {r['linf_mean'] * 255:.2f}/255, "
                  f"PSNR {r['psnr_db_mean']:.1f} dB")
        return 0
    if args.command == "models":
        from .commands import list_all

        print(list_all())
        return 0
    if args.command == "info":
        from .detector import Detector

        print(json.dumps(Detector.load(args.model).describe(), indent=2))
        return 0
    return 2


def _attacks() -> list[str]:
    from .adversarial import list_attacks

    return list_attacks()


def _explainers() -> list[str]:
    from .explain import list_explainers

    return list_explainers()


def _task_models(task: str | None) -> list[str]:
    bundled = list_bundled()
    if task in (None, "synthetic"):
        return ["fast"]
    wanted = {"adversarial": ["adversarial"], "both": ["fast", "adversarial"]}[task]
    missing = [m for m in wanted if m not in bundled]
    if missing:
        raise ValueError(f"no bundled model for {missing}; pass --model PATH (bundled: {', '.join(bundled)})")
    return wanted


if __name__ == "__main__":
    sys.exit(main())
