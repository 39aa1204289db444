"""The ``fakescope`` command line: a thin layer over the Python API. Exit codes: 0 ok, 1 some files failed,
2 usage or input error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .cli_adversarial import (
    add_adversarial_benchmark,
    add_ensemble,
    add_guard,
    add_reproduce_adversarial_options,
    run_adversarial_benchmark,
    run_ensemble,
    run_guard,
    run_reproduce_adversarial,
)
from .models.checkpoint import list_bundled


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
    p.add_argument("--workers", type=int, help="decode processes (default: half the CPUs when there is more than "
                   "one chunk, else 0 = decode in this process)")
    p.add_argument("--chunk", type=int, default=512, help="files decoded and written per step")
    p.add_argument("--engine", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto: ONNX Runtime when installed and it has the architecture (same scores to ~1e-6, "
                   "starts without importing torch), else torch")
    p.add_argument("--bf16", action="store_true", help="bfloat16 inference: faster on CPUs with AVX-512-BF16 or "
                   "AMX, but scores move by up to ~0.03 and about 1 verdict in 2,500 flips (default float32)")


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page for a run, evaluation, attack or study folder")
    p.add_argument("run_dir", help="folder written by train, evaluate, attack, study or adversarial-benchmark "
                   "(sub-folders included)")
    p.add_argument("--out", help="HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--gallery", type=int, default=8, help="most confident correct/wrong predictions shown")
    p.add_argument("--examples", type=int, default=6, help="attacked image pairs shown per attack folder")


def _add_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="learning curve, robustness to image processing, adversarial evasion")
    studies = p.add_subparsers(dest="study", required=True)
    s = studies.add_parser("learning-curve", help="test accuracy against training images per class, over seeds")
    s.add_argument("--data", required=True, help="CIFAKE layout (train/ and test/)")
    s.add_argument("--out", required=True)
    s.add_argument("--sizes", type=int, nargs="+", help="training images per class (default 500 ... 45000)")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    s.add_argument("--epochs", type=int, default=5)
    s.add_argument("--arch", choices=_Lazy(_models), default="seed-cnn", metavar="ARCH",
                   help="architecture: %(choices)s (default seed-cnn)")
    s.add_argument("--test-data", dest="test_data", help="test set when DATA has no test/ split")
    s.add_argument("--batch-size", type=int, dest="batch_size")
    s.add_argument("--lr", type=float)
    s.add_argument("--optimizer", choices=["sgd", "adam"])
    s.add_argument("--n-boot", type=int, default=200, dest="n_boot", help="bootstrap resamples for the CIs")
    s.add_argument("--quiet", action="store_true")
    s = studies.add_parser("robustness", help="accuracy under JPEG, blur, rescaling and noise")
    s.add_argument("--model", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--split", default="test")
    s.add_argument("--limit", type=int, help="at most N images per class (seeded)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--family", action="append", help="jpeg, blur, downscale, resample or noise; repeat (default all)")
    s.add_argument("--n-boot", type=int, default=200, dest="n_boot")
    s = studies.add_parser("evasion", help="FGSM/PGD evasion of the detector, before and after adversarial "
                           "fine-tuning")
    s.add_argument("--model", required=True)
    s.add_argument("--data", required=True, help="CIFAKE layout: test/ is attacked, train/ fine-tunes")
    s.add_argument("--out", required=True)
    s.add_argument("--eps", type=float, action="append", help="L-inf budget in 0..255 units; repeat (default 1 2 4 8)")
    s.add_argument("--steps", type=int, default=10, help="PGD steps")
    s.add_argument("--limit", type=int, default=1000, help="images per class, attacked and fine-tuned on")
    s.add_argument("--finetune-epochs", type=int, default=1, dest="finetune_epochs")
    s.add_argument("--finetune-eps", type=float, dest="finetune_eps", help="0..255 units (default: largest --eps)")
    s.add_argument("--lr", type=float, default=1e-4)
    s.add_argument("--batch-size", type=int, default=128, dest="batch_size")
    s.add_argument("--seed", type=int, default=0)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="web app and HTTP API (needs: pip install \"fakescope[serve]\")")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", action="append", help="bundled name or checkpoint path; repeat (default: every "
                   "bundled model)")
    p.add_argument("--max-upload-mb", type=float, default=20, dest="max_upload_mb",
                   help="largest request body accepted, in MB (default 20)")


def _run_report_or_study(args: argparse.Namespace) -> int:
    """``fakescope report`` and ``fakescope study ...``."""
    if args.command == "report":
        from .report import build_report

        print(build_report(args.run_dir, out=args.out, gallery_k=args.gallery, examples=args.examples))
        return 0
    if args.study == "learning-curve":
        from .studies import learning_curve
        from .studies.learning_curve import DEFAULT_SIZES

        extra = {k: getattr(args, k) for k in ("batch_size", "lr", "optimizer") if getattr(args, k) is not None}
        doc = learning_curve(args.data, args.out, sizes=tuple(args.sizes or DEFAULT_SIZES), seeds=tuple(args.seeds),
                             arch=args.arch, epochs=args.epochs, test_data=args.test_data, n_boot=args.n_boot,
                             quiet=args.quiet, **extra)
        for r in doc["summary"]:
            print(f"{r['size']:>7} per class: accuracy {r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f} "
                  f"({r['n_runs']} seeds)")
        print(f"written: {Path(args.out) / 'learning_curve.json'} (+ .png)")
        return 0
    if args.study == "robustness":
        from .studies import PERTURBATIONS, robustness_study

        fams = None if not args.family else {f: PERTURBATIONS.get(f, ()) for f in args.family}
        if fams is not None and not all(fams.values()):
            raise ValueError(f"unknown --family; choose from {', '.join(PERTURBATIONS)}")
        doc = robustness_study(args.model, args.data, args.out, split=args.split, limit=args.limit, seed=args.seed,
                               families=fams, n_boot=args.n_boot)
        for r in doc["results"]:
            level = "" if r["level"] is None else f" {r['level']:g}"
            print(f"{r['family'] + level:<16} accuracy {r['accuracy']:.4f}"
                  + (f"  ({r['delta_accuracy']:+.4f})" if "delta_accuracy" in r else ""))
        print(f"written: {Path(args.out) / 'robustness.json'} (+ .png)")
        return 0
    from .studies import evasion_study

    eps = tuple(e / 255.0 for e in (args.eps or (1, 2, 4, 8)))
    doc = evasion_study(args.model, args.data, args.out, eps_list=eps, steps=args.steps, limit=args.limit,
                        finetune_epochs=args.finetune_epochs, seed=args.seed, lr=args.lr, batch_size=args.batch_size,
                        finetune_eps=None if args.finetune_eps is None else args.finetune_eps / 255.0)
    for r in doc["recovery"]:
        print(f"PGD eps {r['eps_255']:g}/255: accuracy on FAKE {_pct(r['pgd_acc_fake_before'])} before, "
              f"{_pct(r['pgd_acc_fake_after'])} after fine-tuning")
    print(f"written: {Path(args.out) / 'evasion.json'} (+ .png, finetuned.json)")
    return 0


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2%}"


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
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as e:
        print(f"fakescope {args.command}: error: {e}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in ("report", "study"):
        return _run_report_or_study(args)
    if args.command == "serve":
        from .serve import run_server

        return run_server(args.host, args.port, args.model, args.max_upload_mb)
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
                        workers=args.workers, chunk=args.chunk, bf16=args.bf16,
                        engine=args.engine)
    if args.command == "demo":
        from .commands import run_demo

        return run_demo(args.model, args.out)
    if args.command == "evaluate":
        from .evaluation import evaluate, format_metrics

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
        from .reproduce import format_reproduce, reproduce_cifake

        out = args.out or "runs/reproduce-cifake"
        r = reproduce_cifake(args.data, out, seeds=args.seeds, full=args.full, best_model=args.best_model)
        print(format_reproduce(r))
        print(f"\nwritten: {Path(out) / 'reproduce.json'}")
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
        from .adversarial.pipeline import attack_dataset, parse_params

        eps = [e / 255.0 for e in args.eps] if args.eps else [None]
        for r in attack_dataset(args.victim, args.data, args.attack, eps, args.n, args.out, args.split, args.seed,
                                exclude=args.exclude, params=parse_params(args.param)):
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


class _Lazy(Sequence[str]):
    """argparse ``choices`` listed on first use: building the parser imports neither torch nor scikit-learn.

    Give the argument a ``metavar`` (argparse would otherwise list the choices when the argument is added).
    """

    def __init__(self, names: Callable[[], list[str]]) -> None:
        self._names = names
        self._items: list[str] | None = None

    def _get(self) -> list[str]:
        if self._items is None:
            self._items = list(self._names())
        return self._items

    def __contains__(self, item: object) -> bool:
        return item in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        return self._get()[i]


def _models() -> list[str]:
    from .models import list_models

    return list_models()


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
