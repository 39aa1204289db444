"""``fakescope attack``, ``adversarial-benchmark``, ``guard``, ``harden`` and the options of ``reproduce adversarial``.

Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .lazy import Lazy, attack_names


def add_reproduce_adversarial_options(p: argparse.ArgumentParser) -> None:
    """Options of ``fakescope reproduce adversarial`` (added to the ``reproduce`` parser)."""
    g = p.add_argument_group("adversarial experiment")
    g.add_argument("--victim", help="CIFAR-10 classify checkpoint that the attack fools (required for adversarial)")
    g.add_argument("--n", type=int, default=7000, help="originals attacked (default 7000, the seed's)")
    g.add_argument("--attack", default="fgsm", help="attack of the seed protocol (default fgsm)")
    g.add_argument("--eps", type=float, default=8.0, help="its L-inf budget in 0..255 units (default 8)")
    g.add_argument("--cifake-model", dest="cifake_model", help="seed-cnn checkpoint trained on CIFAKE, fitted further")
    g.add_argument("--split", default="train", help="split of DATA the originals come from (default train)")
    g.add_argument("--seed", type=int, default=0, help="seed of the image choice and of training")
    g.add_argument("--epochs", type=int, default=5, help="seed-cnn epochs (default 5, the seed's)")
    g.add_argument("--strength-eps", dest="strength_eps", type=float, action="append",
                   help="budgets (0..255) compared for attack strength; repeat (default 2 and 8)")
    g.add_argument("--rounding-eps", dest="rounding_eps", type=float, action="append",
                   help="budgets (0..255) whose uint8 rounding is measured; repeat (default 0.5, 2, 8)")
    g.add_argument("--n-rounding", dest="n_rounding", type=int, default=1000, help="images for the rounding figures")
    g.add_argument("--residual-epochs", dest="residual_epochs", type=int, help="residual-cnn epochs (default 8)")
    g.add_argument("--residual-width", dest="residual_width", type=int, help="residual-cnn width (default 16)")
    g.add_argument("--quiet", action="store_true", help="no progress output")


def add_attack(sub: argparse._SubParsersAction) -> None:
    """The ``fakescope attack`` sub-command."""
    p = sub.add_parser("attack", help="attack a victim classifier's images (ART + batched torch attacks)")
    p.add_argument("--victim", required=True, help="a classify checkpoint (fakescope train --task classify)")
    p.add_argument("--data", required=True, help="class folders (CIFAR-10 layout) or .npz with images+labels")
    p.add_argument("--attack", required=True, choices=Lazy(attack_names), metavar="ATTACK", help="%(choices)s")
    p.add_argument("--eps", type=float, action="append", help="L-inf ε in 0..255 units (e.g. 8); repeat to sweep")
    p.add_argument("--n", type=int, default=1000, help="images to attack")
    p.add_argument("--split", default="test", help="split of DATA the originals come from")
    p.add_argument("--seed", type=int, default=0, help="seed of the image choice and of random attacks")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="an option of the attack, e.g. nb_candidates=10 or max_iter=100 (recorded in the manifest)")
    p.add_argument("--exclude", action="append", metavar="DIR",
                   help="attack folder(s) whose source images are left out (a calibration set disjoint from a test "
                        "set); repeat")
    p.add_argument("--out", required=True, help="folder for one attack folder per ε (originals.npz, attacked.npz, "
                   "manifest.json)")
    p.set_defaults(run=run_attack)


def run_attack(args: argparse.Namespace) -> int:
    """``fakescope attack``: one attack folder per ε."""
    from ..adversarial.run import attack_dataset, parse_params

    eps = [e / 255.0 for e in args.eps] if args.eps else [None]
    for r in attack_dataset(args.victim, args.data, args.attack, eps, args.n, args.out, args.split, args.seed,
                            exclude=args.exclude, params=parse_params(args.param)):
        print(f"{r['folder']}: clean acc {r['clean_accuracy']:.4f} -> {r['adversarial_accuracy']:.4f} under "
              f"attack, success {r['success_rate']:.4f}, mean Linf {r['linf_mean'] * 255:.2f}/255, "
              f"PSNR {r['psnr_db_mean']:.1f} dB")
    return 0


def add_adversarial_benchmark(sub: argparse._SubParsersAction) -> None:
    """The ``fakescope adversarial-benchmark`` sub-command."""
    p = sub.add_parser("adversarial-benchmark", help="evaluate adversarial-image detectors: per attack × ε, "
                       "cross-attack, false positives on processed clean images, adaptive attack")
    p.add_argument("--victim", required=True, help="a classify checkpoint (fakescope train --task classify)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="images to attack: class folders (CIFAR-10 layout), CIFAR-10 batches or .npz")
    src.add_argument("--attack-dir", dest="attack_dir",
                     help="instead of --data: folders written by fakescope attack (DIR, DIR/SPLIT or DIR/*); their "
                          "distinct originals are split by source group into validation / test / train")
    p.add_argument("--out", required=True, help="folder for detector_eval.json and the plots")
    p.add_argument("--split", default="test", help="split of DATA the originals come from")
    p.add_argument("--n-train", dest="n_train", type=int,
                   help="source images to train detectors on (default 1000, 0 with no --detector; with "
                        "--attack-dir: at most this many of the groups left over)")
    p.add_argument("--n-val", dest="n_val", type=float,
                   help="source images to set thresholds on (default 500; with --attack-dir a number of groups or "
                        "a fraction < 1, default 0.2)")
    p.add_argument("--n-test", dest="n_test", type=float,
                   help="source images to test on (default 1000; with --attack-dir a number of groups or a fraction "
                        "< 1, default 0.4, or 0.8 with no --detector)")
    p.add_argument("--detector", action="append",
                   help="feature-squeeze, mahalanobis, residual-cnn, or none; repeat (default all)")
    p.add_argument("--detector-checkpoint", dest="detector_checkpoint", action="append", metavar="PATH",
                   help="a trained checkpoint of task adversarial (e.g. runs/adversarial/model.json), evaluated as "
                        "it is at its calibrated threshold and at --fpr on clean validation; repeat")
    p.add_argument("--only-checkpoints", dest="only_checkpoints", action="store_true",
                   help="evaluate only the --detector-checkpoint models (same as --detector none)")
    p.add_argument("--no-negatives", dest="negatives", action="store_false",
                   help="train residual-cnn without degraded clean negatives (JPEG/blur/noise/rescale on label 0)")
    p.add_argument("--attack", action="append", metavar="NAME[:EPS]",
                   help="e.g. fgsm:8 (EPS in 0..255) or deepfool-fast; repeat (default FGSM/BIM/PGD at 2, 4, 8 + "
                        "deepfool-fast + cw-l2-fast)")
    p.add_argument("--train-attack", dest="train_attack", action="append", metavar="TAG",
                   help="attacks residual-cnn is trained on, e.g. pgd-eps8; repeat (default every attack)")
    p.add_argument("--fpr", type=float, default=0.05, help="target false-positive rate of the thresholds")
    p.add_argument("--no-adaptive", dest="adaptive", action="store_false", help="skip the adaptive attack")
    p.add_argument("--adaptive-attack", dest="adaptive_attack", default="pgd:8", metavar="NAME:EPS",
                   help="the attack whose detector the adaptive PGD targets, and its budget (default pgd:8)")
    p.add_argument("--adaptive-steps", dest="adaptive_steps", type=int, default=20, help="steps of the adaptive PGD")
    p.add_argument("--leave-one-family-out", dest="leave_one_out", action="store_true",
                   help="also train residual-cnn without each attack family and test it on that family")
    p.add_argument("--adaptive-curve", dest="curve_n", type=int, metavar="N",
                   help="adaptive evasion rate against steps and ε on N test images, per --detector-checkpoint")
    p.add_argument("--curve-eps", dest="curve_eps", type=float, action="append", metavar="EPS",
                   help="ε of the adaptive curve in 0..255 units; repeat (default 2, 4, 8)")
    p.add_argument("--curve-steps", dest="curve_steps", type=int, action="append", metavar="STEPS",
                   help="attack steps of the adaptive curve; repeat (default 5, 10, 20, 50)")
    p.add_argument("--residual-epochs", dest="residual_epochs", type=int, help="residual-cnn epochs (default 8)")
    p.add_argument("--residual-width", dest="residual_width", type=int, help="residual-cnn width (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the splits, attacks and detector training")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run_adversarial_benchmark)


def add_guard(sub: argparse._SubParsersAction) -> None:
    """The ``fakescope guard`` sub-command."""
    p = sub.add_parser("guard", help="one adversarial detector from a residual detector + the victim's decision "
                       "margin (catches DeepFool/C&W), calibrated on held-out attack folders")
    p.add_argument("--residual", required=True, help="a detector of task adversarial (e.g. runs/adversarial)")
    p.add_argument("--victim", required=True, help="the CIFAR-10 classifier the attacks target")
    p.add_argument("--calibration", required=True, metavar="DIR",
                   help="attack folders from images neither model trained on and not in --test "
                        "(fakescope attack --exclude TEST_DIR ...)")
    p.add_argument("--test", metavar="DIR", help="attack folders to evaluate the result on")
    p.add_argument("--fpr", type=float, default=0.05, help="false-positive rate of the threshold on clean "
                   "calibration images (default 0.05)")
    p.add_argument("--sharpness", type=float, default=2.0, help="smooth-max sharpness of the two scores")
    p.add_argument("--out", required=True, help="folder for the guarded checkpoint (model.json + .safetensors)")
    p.set_defaults(run=run_guard)


def run_guard(args: argparse.Namespace) -> int:
    """``fakescope guard``."""
    from ..adversarial.detectors.guarded import guard

    command = (f"fakescope guard --residual {args.residual} --victim {args.victim} --calibration {args.calibration}"
               + (f" --test {args.test}" if args.test else "") + f" --fpr {args.fpr:g} --sharpness {args.sharpness:g}"
               + f" --out {args.out}")
    r = guard(args.residual, args.victim, args.calibration, args.out, fpr=args.fpr, sharpness=args.sharpness,
              test=args.test, command=command)
    print(f"written: {r['checkpoint']}")
    return 0


def add_harden(sub: argparse._SubParsersAction) -> None:
    """The ``fakescope harden`` sub-command."""
    p = sub.add_parser("harden", help="fine-tune an adversarial detector on adaptive attacks made against itself "
                       "as it trains (dynamic adversary training); then fakescope guard")
    p.add_argument("--init", required=True, help="the detector to start from (task adversarial; a guarded one "
                   "gives its residual CNN), e.g. adversarial")
    p.add_argument("--victim", required=True, help="the classifier the adaptive attacks must fool")
    p.add_argument("--data", required=True, help="attack folder(s) to fine-tune on (fakescope attack --out)")
    p.add_argument("--out", required=True, help="run folder (model.json, config.json, adversary.json)")
    p.add_argument("--eps", type=float, action="append", help="L-inf ε of the adaptive attacks in 0..255 units, one "
                   "drawn per batch; repeat (default 2, 4, 8)")
    p.add_argument("--steps", type=int, default=10, help="adaptive PGD steps per batch")
    p.add_argument("--lam", type=float, action="append", help="λ of the detector term, one drawn per batch; repeat "
                   "(default 0.5, 1, 2, 4)")
    p.add_argument("--share", type=float, default=0.5, help="share of a batch's clean images attacked afresh")
    p.add_argument("--target-logit", dest="target_logit", type=float, default=0.0,
                   help="the attacker pushes the detector's logit below this")
    p.add_argument("--no-matched-noise", dest="matched_noise", action="store_false",
                   help="do not turn the attacked sources into clean rows with Gaussian noise of the same L2")
    p.add_argument("--epochs", type=int, default=2, help="passes over the training pairs")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=64, help="images per step")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and of the adversary's draws")
    p.add_argument("--resume", action="store_true", help="continue --out with its saved config and adversary")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run_harden)


def run_harden(args: argparse.Namespace) -> int:
    """``fakescope harden``."""
    from ..adversarial.hardening import Adversary, harden

    adv = Adversary(victim=args.victim, eps=tuple(e / 255.0 for e in (args.eps or (2.0, 4.0, 8.0))),
                    steps=args.steps, lams=tuple(args.lam or (0.5, 1.0, 2.0, 4.0)), share=args.share,
                    target_logit=args.target_logit, seed=args.seed, matched_noise=args.matched_noise)
    r = harden(args.data, args.init, args.out, adv, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
               threads=args.threads, seed=args.seed, resume=args.resume, quiet=args.quiet)
    print(f"written: {Path(args.out) / 'model.json'} (validation accuracy {r.get('val_acc', float('nan')):.4f})")
    return 0


def _residual_kw(args: argparse.Namespace) -> dict[str, Any]:
    kw = {"epochs": args.residual_epochs, "width": args.residual_width}
    return {k: v for k, v in kw.items() if v is not None}


def parse_attack(spec: str) -> tuple[str, float | None]:
    """``fgsm:8`` → ``("fgsm", 8/255)``; ``deepfool-fast`` → ``("deepfool-fast", None)``."""
    name, _, eps = spec.partition(":")
    try:
        return name, (float(eps) / 255.0 if eps else None)
    except ValueError:
        raise ValueError(f"--attack {spec!r}: expected NAME or NAME:EPS with EPS in 0..255") from None


def run_reproduce_adversarial(args: argparse.Namespace) -> int:
    """``fakescope reproduce adversarial``."""
    from ..studies.reproduce_adversarial import format_reproduce_adversarial, reproduce_adversarial

    if not args.victim:
        raise ValueError("reproduce adversarial needs --victim (a CIFAR-10 classify checkpoint)")
    out = args.out or "runs/reproduce-adversarial"
    r = reproduce_adversarial(args.victim, args.data, out, n=args.n, attack=args.attack, eps=args.eps / 255.0,
                              cifake_model=args.cifake_model, split=args.split, seed=args.seed, epochs=args.epochs,
                              strength_eps=tuple(e / 255.0 for e in (args.strength_eps or (2.0, 8.0))),
                              rounding_eps=tuple(e / 255.0 for e in (args.rounding_eps or (0.5, 2.0, 8.0))),
                              n_rounding=args.n_rounding, residual_kw=_residual_kw(args), quiet=args.quiet)
    print(format_reproduce_adversarial(r))
    print(f"\nwritten: {Path(out) / 'reproduce.json'}")
    return 0


def _curve(args: argparse.Namespace) -> dict[str, object] | None:
    """``adaptive_curve`` keywords from --adaptive-curve/--curve-eps/--curve-steps (None: no curve)."""
    if not args.curve_n:
        return None
    kw: dict[str, object] = {"n": args.curve_n}
    if args.curve_eps:
        kw["eps_grid"] = [e / 255.0 for e in args.curve_eps]
    if args.curve_steps:
        kw["steps_grid"] = list(args.curve_steps)
    return kw


def run_adversarial_benchmark(args: argparse.Namespace) -> int:
    """``fakescope adversarial-benchmark``."""
    from ..adversarial.benchmark import DEFAULT_DETECTORS, adversarial_benchmark, format_benchmark

    attacks = [parse_attack(a) for a in args.attack] if args.attack else None
    detectors = [] if args.only_checkpoints else [d for d in args.detector or DEFAULT_DETECTORS if d != "none"]
    checkpoints = args.detector_checkpoint or []
    if not detectors and not checkpoints:
        raise ValueError("nothing to evaluate: give a --detector or a --detector-checkpoint")
    adaptive = None
    if args.adaptive:
        name, eps = parse_attack(args.adaptive_attack)
        if eps is None:
            raise ValueError("--adaptive-attack needs a budget, e.g. pgd:8")
        adaptive = (name, eps)
    doc = adversarial_benchmark(args.victim, args.data, args.out, n_train=args.n_train, n_val=args.n_val,
                                n_test=args.n_test, detectors=detectors, attacks=attacks,
                                train_attacks=args.train_attack, split=args.split, fpr=args.fpr, adaptive=adaptive,
                                adaptive_steps=args.adaptive_steps,
                                detector_kw={"residual-cnn": _residual_kw(args)}, seed=args.seed, quiet=args.quiet,
                                negatives=args.negatives, checkpoints=checkpoints, attack_dir=args.attack_dir,
                                leave_one_out=args.leave_one_out, curve=_curve(args))
    print(format_benchmark(doc))
    plots = ", ".join(Path(p).name for p in doc["plots"].values())
    print(f"\nwritten: {Path(args.out) / 'detector_eval.json'} (+ {plots})")
    return 0
