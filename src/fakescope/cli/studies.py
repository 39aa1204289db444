"""``fakescope report``, ``study ...``, ``reproduce``, ``explain`` and ``evaluate``: reading and explaining results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .adversarial import add_reproduce_adversarial_options, run_reproduce_adversarial
from .lazy import Lazy, explainer_names, model_names
from .scan import probability


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page for a run, evaluation, attack or study folder")
    p.add_argument("run_dir", help="folder written by train, evaluate, attack, study or adversarial-benchmark "
                   "(sub-folders included)")
    p.add_argument("--out", help="HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--gallery", type=int, default=8, help="most confident correct/wrong predictions shown")
    p.add_argument("--examples", type=int, default=6, help="attacked image pairs shown per attack folder")
    p.set_defaults(run=run_report)


def add_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="learning curve, robustness to image processing, adversarial evasion")
    studies = p.add_subparsers(dest="study", required=True)
    s = studies.add_parser("learning-curve", help="test accuracy against training images per class, over seeds")
    s.add_argument("--data", required=True, help="CIFAKE layout (train/ and test/)")
    s.add_argument("--out", required=True, help="folder for learning_curve.json (+ .png) and one run per size and seed")
    s.add_argument("--sizes", type=int, nargs="+", help="training images per class (default 500 ... 45000)")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds, one run each")
    s.add_argument("--epochs", type=int, default=5, help="epochs of each run")
    s.add_argument("--arch", choices=Lazy(model_names), default="seed-cnn", metavar="ARCH",
                   help="architecture: %(choices)s (default seed-cnn)")
    s.add_argument("--test-data", dest="test_data", help="test set when DATA has no test/ split")
    s.add_argument("--batch-size", type=int, dest="batch_size", help="images per step (default: the architecture's "
                   "recipe, as fakescope train)")
    s.add_argument("--lr", type=float, help="learning rate (default: as fakescope train)")
    s.add_argument("--optimizer", choices=["sgd", "adam"], help="default: as fakescope train")
    s.add_argument("--n-boot", type=int, default=200, dest="n_boot", help="bootstrap resamples for the CIs")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.set_defaults(run=run_learning_curve)
    s = studies.add_parser("robustness", help="accuracy under JPEG, blur, rescaling and noise")
    s.add_argument("--model", required=True, help="bundled name or checkpoint path")
    s.add_argument("--data", required=True, help="labelled images (CIFAKE layout, two-class folder, .npz, list)")
    s.add_argument("--out", required=True, help="folder for robustness.json (+ .png)")
    s.add_argument("--split", default="test", help="split of a CIFAKE-layout folder")
    s.add_argument("--limit", type=int, help="at most N images per class (seeded; default all)")
    s.add_argument("--seed", type=int, default=0, help="seed of --limit's choice and of the noise")
    s.add_argument("--family", action="append", help="jpeg, blur, downscale, resample or noise; repeat (default all)")
    s.add_argument("--n-boot", type=int, default=200, dest="n_boot", help="bootstrap resamples for the CIs")
    s.set_defaults(run=run_robustness)
    s = studies.add_parser("evasion", help="FGSM/PGD evasion of the detector, before and after adversarial "
                           "fine-tuning")
    s.add_argument("--model", required=True, help="bundled name or checkpoint path")
    s.add_argument("--data", required=True, help="CIFAKE layout: test/ is attacked, train/ fine-tunes")
    s.add_argument("--out", required=True, help="folder for evasion.json (+ .png) and the fine-tuned checkpoint")
    s.add_argument("--eps", type=float, action="append", help="L-inf budget in 0..255 units; repeat (default 1 2 4 8)")
    s.add_argument("--steps", type=int, default=10, help="PGD steps")
    s.add_argument("--limit", type=int, default=1000, help="images per class, attacked and fine-tuned on")
    s.add_argument("--finetune-epochs", type=int, default=1, dest="finetune_epochs",
                   help="epochs of adversarial fine-tuning")
    s.add_argument("--finetune-eps", type=float, dest="finetune_eps", help="0..255 units (default: largest --eps)")
    s.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate")
    s.add_argument("--batch-size", type=int, default=128, dest="batch_size", help="fine-tuning images per step")
    s.add_argument("--seed", type=int, default=0, help="seed of the image choice and the attacks' random starts")
    s.set_defaults(run=run_evasion)


def run_report(args: argparse.Namespace) -> int:
    """``fakescope report``."""
    from ..report import build_report

    print(build_report(args.run_dir, out=args.out, gallery_k=args.gallery, examples=args.examples))
    return 0


def run_learning_curve(args: argparse.Namespace) -> int:
    """``fakescope study learning-curve``."""
    from ..studies import learning_curve
    from ..studies.learning_curve import DEFAULT_SIZES

    extra = {k: getattr(args, k) for k in ("batch_size", "lr", "optimizer") if getattr(args, k) is not None}
    doc = learning_curve(args.data, args.out, sizes=tuple(args.sizes or DEFAULT_SIZES), seeds=tuple(args.seeds),
                         arch=args.arch, epochs=args.epochs, test_data=args.test_data, n_boot=args.n_boot,
                         quiet=args.quiet, **extra)
    for r in doc["summary"]:
        print(f"{r['size']:>7} per class: accuracy {r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f} "
              f"({r['n_runs']} seeds)")
    print(f"written: {Path(args.out) / 'learning_curve.json'} (+ .png)")
    return 0


def run_robustness(args: argparse.Namespace) -> int:
    """``fakescope study robustness``."""
    from ..data.transforms import PERTURBATIONS
    from ..studies import robustness_study

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


def run_evasion(args: argparse.Namespace) -> int:
    """``fakescope study evasion``."""
    from ..studies import evasion_study

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


def add_reproduce(sub: argparse._SubParsersAction) -> None:
    """``fakescope reproduce cifake|adversarial``."""
    p = sub.add_parser("reproduce", help="reproduce the seed notebook's experiments")
    p.add_argument("experiment", choices=["cifake", "adversarial"], help="which notebook experiment")
    p.add_argument("--data", required=True, help="cifake: the CIFAKE folder (train/ and test/); adversarial: "
                   "CIFAR-10 class folders or python batches")
    p.add_argument("--out", help="default runs/reproduce-EXPERIMENT")
    p.add_argument("--seeds", type=int, default=3, help="cifake: seeds of the seed notebook's protocol")
    p.add_argument("--no-full", action="store_false", dest="full", help="skip training seed-cnn on all data")
    p.add_argument("--best-model", default="best", help="cifake: our checkpoint compared with the notebook's CNN")
    add_reproduce_adversarial_options(p)
    p.set_defaults(run=run_reproduce)


def run_reproduce(args: argparse.Namespace) -> int:
    """``fakescope reproduce``: the seed notebook's experiments."""
    if args.experiment == "adversarial":
        return run_reproduce_adversarial(args)
    from ..studies.reproduce_cifake import format_reproduce, reproduce_cifake

    out = args.out or "runs/reproduce-cifake"
    r = reproduce_cifake(args.data, out, seeds=args.seeds, full=args.full, best_model=args.best_model)
    print(format_reproduce(r))
    print(f"\nwritten: {Path(out) / 'reproduce.json'}")
    return 0


def add_explain(sub: argparse._SubParsersAction) -> None:
    """``fakescope explain``."""
    p = sub.add_parser("explain", help="Grad-CAM and Integrated Gradients overlays with the verdict")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--model", default="fast", help="bundled name or checkpoint path")
    p.add_argument("--out", default="explain", help="folder for the PNGs and explanations.json")
    p.add_argument("--method", action="append", choices=Lazy(explainer_names), metavar="METHOD",
                   help="%(choices)s; repeat for several (default: all)")
    p.add_argument("--upscale", type=int, default=8, help="pixel size of the 32x32 input in the PNG")
    p.set_defaults(run=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    """``fakescope explain``: overlays and the verdict per image; exit 1 when any image could not be read."""
    from ..explain import explain

    results = explain(args.images, model=args.model, out=args.out, methods=args.method, upscale=args.upscale)
    for r in results:
        print(f"{r['path']}: " + (f"error: {r['error']}" if r["error"] else f"{r['label']} {r['score']:.3f} "
                                  f"-> {r['png']}"))
    print(f"written: {Path(args.out) / 'explanations.json'}")
    return 1 if any(r["error"] for r in results) else 0


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """``fakescope evaluate``."""
    p = sub.add_parser("evaluate", help="metrics and plots of a model on a labelled dataset")
    p.add_argument("--model", required=True, help="bundled name or checkpoint path")
    p.add_argument("--data", required=True, help="labelled images: CIFAKE layout, two-class or class folders, .npz "
                   "or file list")
    p.add_argument("--split", default="test", help="split of a CIFAKE-layout folder (default test)")
    p.add_argument("--out", help="folder for metrics.json, predictions.csv and plots")
    p.add_argument("--threshold", type=probability, help="P(label 1) from which an image counts as label 1, in "
                   "[0, 1] (default: the model's calibrated threshold)")
    p.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """``fakescope evaluate``: metrics (and with --out: files and plots)."""
    from ..evaluation.evaluate import evaluate, format_metrics

    m = evaluate(args.model, args.data, out=args.out, split=args.split, threshold=args.threshold)
    print(json.dumps(m, indent=2) if args.json else format_metrics(m))
    return 0
