"""The ``fakescope`` command line: a thin layer over the Python API. Exit codes: 0 ok, 1 some files failed,
2 usage or input error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .adversarial import (
    add_adversarial_benchmark,
    add_ensemble,
    add_guard,
    add_reproduce_adversarial_options,
    run_adversarial_benchmark,
    run_ensemble,
    run_guard,
    run_reproduce_adversarial,
)
from .lazy import _attacks, _explainers, _Lazy
from .scan import _add_scan, _task_models
from .serve import _add_serve
from .studies import _add_report, _add_study, _run_report_or_study
from .train import _add_train


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fakescope", description="Detect AI-generated and adversarial images.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_scan(sub)
    _add_report(sub)
    _add_study(sub)
    _add_serve(sub)
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
    p.add_argument("experiment", choices=["cifake", "adversarial"])
    p.add_argument("--data", required=True, help="cifake: the CIFAKE folder (train/ and test/); adversarial: "
                   "CIFAR-10 class folders or python batches")
    p.add_argument("--out", help="default runs/reproduce-EXPERIMENT")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--no-full", action="store_false", dest="full", help="skip training seed-cnn on all data")
    p.add_argument("--best-model", default="best")
    add_reproduce_adversarial_options(p)
    p = sub.add_parser("explain", help="Grad-CAM and Integrated Gradients overlays with the verdict")
    p.add_argument("images", nargs="+")
    p.add_argument("--model", default="fast")
    p.add_argument("--out", default="explain")
    p.add_argument("--method", action="append", choices=_Lazy(_explainers), metavar="METHOD",
                   help="%(choices)s; repeat for several (default: all)")
    p.add_argument("--upscale", type=int, default=8, help="pixel size of the 32x32 input in the PNG")
    p = sub.add_parser("attack", help="attack a victim classifier's images (ART + batched torch attacks)")
    p.add_argument("--victim", required=True, help="a classify checkpoint (fakescope train --task classify)")
    p.add_argument("--data", required=True, help="class folders (CIFAR-10 layout) or .npz with images+labels")
    p.add_argument("--attack", required=True, choices=_Lazy(_attacks), metavar="ATTACK", help="%(choices)s")
    p.add_argument("--eps", type=float, action="append", help="L-inf ε in 0..255 units (e.g. 8); repeat to sweep")
    p.add_argument("--n", type=int, default=1000, help="images to attack")
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="an option of the attack, e.g. nb_candidates=10 or max_iter=100 (recorded in the manifest)")
    p.add_argument("--exclude", action="append", metavar="DIR",
                   help="attack folder(s) whose source images are left out (a calibration set disjoint from a test "
                        "set); repeat")
    p.add_argument("--out", required=True)
    add_adversarial_benchmark(sub)
    add_guard(sub)
    add_ensemble(sub)
    sub.add_parser("models", help="list architectures and bundled checkpoints")
    p = sub.add_parser("info", help="describe a checkpoint")
    p.add_argument("model")
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"fakescope {args.command}: error: {e}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in ("report", "study"):
        return _run_report_or_study(args)
    if args.command == "serve":
        from ..serve import run_server

        return run_server(args.host, args.port, args.model, args.max_upload_mb)
    if args.command == "train":
        from ..training.config import resolve_config
        from ..training.loop import fit

        flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "quiet", "width")}
        if args.width:
            flags["arch_kwargs"] = {"width": args.width}
        cfg = resolve_config(args.config, **flags)
        metrics = fit(cfg, quiet=args.quiet)
        print(f"saved {cfg.out}/model.safetensors (+ .json); validation accuracy {metrics['val_acc']:.4f}")
        return 0
    if args.command == "scan":
        from .scan import run_scan

        models = args.model or _task_models(args.task)
        return run_scan(args.paths, models, threshold=args.threshold, as_json=args.json, as_csv=args.csv,
                        output=args.output, resume=args.resume, save=args.save, max_rows=args.max_rows,
                        workers=args.workers, chunk=args.chunk, bf16=args.bf16,
                        engine=args.engine)
    if args.command == "demo":
        from ..scanning.demo import run_demo

        return run_demo(args.model, args.out)
    if args.command == "evaluate":
        from ..evaluation.evaluate import evaluate, format_metrics

        m = evaluate(args.model, args.data, out=args.out, split=args.split, threshold=args.threshold)
        print(json.dumps(m, indent=2) if args.json else format_metrics(m))
        return 0
    if args.command == "adversarial-benchmark":
        return run_adversarial_benchmark(args)
    if args.command == "guard":
        return run_guard(args)
    if args.command == "ensemble":
        return run_ensemble(args)
    if args.command == "reproduce" and args.experiment == "adversarial":
        return run_reproduce_adversarial(args)
    if args.command == "reproduce":
        from ..studies.reproduce_cifake import format_reproduce, reproduce_cifake

        out = args.out or "runs/reproduce-cifake"
        r = reproduce_cifake(args.data, out, seeds=args.seeds, full=args.full, best_model=args.best_model)
        print(format_reproduce(r))
        print(f"\nwritten: {Path(out) / 'reproduce.json'}")
        return 0
    if args.command == "explain":
        from ..explain import explain

        results = explain(args.images, model=args.model, out=args.out, methods=args.method, upscale=args.upscale)
        for r in results:
            print(f"{r['path']}: " + (f"error: {r['error']}" if r["error"] else f"{r['label']} {r['score']:.3f} "
                                      f"-> {r['png']}"))
        print(f"written: {Path(args.out) / 'explanations.json'}")
        return 1 if any(r["error"] for r in results) else 0
    if args.command == "attack":
        from ..adversarial.run import attack_dataset, parse_params

        eps = [e / 255.0 for e in args.eps] if args.eps else [None]
        for r in attack_dataset(args.victim, args.data, args.attack, eps, args.n, args.out, args.split, args.seed,
                                exclude=args.exclude, params=parse_params(args.param)):
            print(f"{r['folder']}: clean acc {r['clean_accuracy']:.4f} -> {r['adversarial_accuracy']:.4f} under "
                  f"attack, success {r['success_rate']:.4f}, mean Linf {r['linf_mean'] * 255:.2f}/255, "
                  f"PSNR {r['psnr_db_mean']:.1f} dB")
        return 0
    if args.command == "models":
        from .info import list_all

        print(list_all())
        return 0
    if args.command == "info":
        from ..inference.scorer import Detector

        print(json.dumps(Detector.load(args.model).describe(), indent=2))
        return 0
    return 2
