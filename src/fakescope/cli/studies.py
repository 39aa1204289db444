"""``fakescope report`` and ``fakescope study ...``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .lazy import _Lazy, _models


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


def _run_report_or_study(args: argparse.Namespace) -> int:
    """``fakescope report`` and ``fakescope study ...``."""
    if args.command == "report":
        from ..report import build_report

        print(build_report(args.run_dir, out=args.out, gallery_k=args.gallery, examples=args.examples))
        return 0
    if args.study == "learning-curve":
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
    if args.study == "robustness":
        from ..studies import PERTURBATIONS, robustness_study

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
