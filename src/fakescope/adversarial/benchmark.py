"""``adversarial_benchmark``: the whole detector protocol on one victim and one dataset → ``detector_eval.json``.

1. Draw ``n_train + n_val + n_test`` source images (seeded) and split them by source: train / val / test, and
   attack every source with each (attack, ε) of ``attacks`` (uint8 copies); OR read folders written by
   ``fakescope attack`` (``attack_dir``) and split their distinct originals by source group (an original and all
   its attacked copies always on one side): validation (thresholds), test, and the rest for training.
2. Per detector: clean-only detectors (feature squeezing, Mahalanobis) are fitted once on clean train images;
   detectors trained on attacks (residual-cnn) once per training attack, by default with degraded clean
   negatives (``--augment negatives``). Thresholds: 5% FPR on clean validation.
   Trained checkpoints (``checkpoints``) are never refitted: judged at their calibrated threshold and at 5% FPR.
3. Tables: per attack × ε (the detector trained on that attack; on every changed copy, and on those that fool
   the victim, ``*_fooled``), cross-attack (train on A, test on B),
   false-positive rates on clean-but-processed test images, and the adaptive attack (differentiable detectors).
4. Plots: AUROC against ε per attack family, and a cross-attack heat map per trained detector.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..data import ImageSet, load_dataset
from ..io import write_json
from ..models import load_checkpoint
from ..models.net import Net
from ..progress import printer
from .adaptive import adaptive_curve, adaptive_evaluation
from .attacks.stats import predict
from .detectors.base import AdversarialDetector, create_detector
from .detectors.checkpoint import CheckpointDetector
from .families import families, family_table, guarded_components, leave_one_family_out
from .manifest import checkpoint_hashes
from .protocol import (
    DEFAULT_ATTACKS,
    attack_sets_from_dirs,
    attack_tag,
    build_attack_sets,
    checkpoint_detectors,
    evaluate_scores,
    false_positive_rates,
    fit_detector,
    gaussian_like,
    group_split,
    l2_per_image,
    negatives_summary,
    noisy_negatives,
    pair_leak,
)
from .tables import format_benchmark as format_benchmark  # re-exported: the CLI prints it
from .tables import plot_cross_attack, plot_eps_curves

DEFAULT_DETECTORS = ("feature-squeeze", "mahalanobis", "residual-cnn")
MIN_TRAIN_PAIRS = 4


@dataclass
class _Bench:
    """The benchmark's sources (uint8 images, victim labels, source groups), their train/val/test indices and the
    attack sets (``{tag: {attack, eps, norm, images, changed, stats}}``)."""

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    tr: np.ndarray
    va: np.ndarray
    te: np.ndarray
    sets: dict[str, dict[str, Any]]

    @property
    def tags(self) -> list[str]:
        return list(self.sets)

    def pairs(self, tag: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(clean, attacked) images of the sources ``idx`` that attack ``tag`` changed (an unchanged copy is not an
        attacked image)."""
        keep = idx[self.sets[tag]["changed"][idx]]
        return self.images[keep], self.sets[tag]["images"][keep]

    def mark_fooled(self, net: Net) -> None:
        """``sets[tag]["fooled"]``: whether the victim's prediction on each attacked copy differs from its label."""
        for s in self.sets.values():
            s["fooled"] = predict(net, s["images"]) != self.labels


def _victim(victim: str | os.PathLike[str] | Net) -> tuple[Net, str]:
    if isinstance(victim, Net):
        return victim.eval(), "<in-memory Net>"
    net, _ = load_checkpoint(victim)
    return net, str(victim)


def _data(data: str | os.PathLike[str] | ImageSet, size: int, split: str) -> tuple[ImageSet, str]:
    if isinstance(data, ImageSet):
        return data, "<in-memory ImageSet>"
    return load_dataset(data, "classify", size, split), str(data)


def _sources(net: Net, data: str | os.PathLike[str] | ImageSet | None, attack_dir: str | os.PathLike[str] | None,
             split: str, n_train: int | None, n_val: float | None, n_test: float | None,
             attacks: Sequence[tuple[str, float | None]] | None, attack_kw: dict[str, dict[str, Any]] | None,
             trains: bool, seed: int, say: Any) -> tuple[_Bench, str]:
    """(the sources, split and attacked, as ``_Bench``; the data name)."""
    min_train = 1 if trains else 0
    if attack_dir is not None:
        if data is not None:
            raise ValueError("data and attack_dir are alternatives: an attack folder's originals are the sources")
        only = None if attacks is None else [attack_tag(*a) for a in attacks]
        say(f"read attack folders under {attack_dir}")
        images, labels, groups, sets = attack_sets_from_dirs(attack_dir, net.spec.image_size, split, only)
        parts = group_split(groups, val=0.2 if n_val is None else n_val,
                            test=(0.4 if trains else 0.8) if n_test is None else n_test, seed=seed,
                            min_train=min_train)
        if n_train is not None:  # at most n_train of the remaining source groups
            tr_groups = np.random.default_rng(seed + 1).permutation(np.unique(groups[parts["train"]]))[:n_train]
            parts["train"] = parts["train"][np.isin(groups[parts["train"]], tr_groups)]
        return _Bench(images, labels, groups, parts["train"], parts["val"], parts["test"], sets), str(attack_dir)
    if data is None:
        raise ValueError("give data (images to attack) or attack_dir (folders written by fakescope attack)")
    ds, data_name = _data(data, net.spec.image_size, split)
    if len(ds) and int(ds.labels.max()) >= len(net.spec.classes):
        raise ValueError(f"labels go up to {int(ds.labels.max())}, the victim knows {len(net.spec.classes)} classes")
    n_tr = (1000 if trains else 0) if n_train is None else int(n_train)
    n_va, n_te = int(500 if n_val is None else n_val), int(1000 if n_test is None else n_test)
    n_total = n_tr + n_va + n_te
    if n_total > len(ds):
        raise ValueError(f"{n_total} source images asked for, {data_name} holds {len(ds)}")
    src = np.sort(np.random.default_rng(seed).permutation(len(ds))[:n_total])
    images, labels = ds.images[src], ds.labels[src]
    parts = group_split(np.arange(n_total), val=n_va, test=n_te, seed=seed, min_train=min_train)
    sets = build_attack_sets(net, images, labels, DEFAULT_ATTACKS if attacks is None else attacks, seed=seed,
                             attack_kw=attack_kw, say=say)
    return _Bench(images, labels, np.arange(n_total), parts["train"], parts["val"], parts["test"], sets), data_name


def adversarial_benchmark(victim_ckpt: str | os.PathLike[str] | Net, data: str | os.PathLike[str] | ImageSet | None,
                          out: str | os.PathLike[str], n_train: int | None = None, n_val: float | None = None,
                          n_test: float | None = None, detectors: Sequence[str] = DEFAULT_DETECTORS,
                          attacks: Sequence[tuple[str, float | None]] | None = None,
                          train_attacks: Sequence[str] | None = None, split: str = "test", fpr: float = 0.05,
                          adaptive: tuple[str, float] | None = ("pgd", 8 / 255), adaptive_steps: int = 20,
                          adaptive_lambda: float | Sequence[float] = (0.5, 1.0, 2.0),
                          detector_kw: dict[str, dict[str, Any]] | None = None,
                          attack_kw: dict[str, dict[str, Any]] | None = None, seed: int = 0,
                          quiet: bool = False, negatives: bool = True,
                          checkpoints: Sequence[str | os.PathLike[str]] = (),
                          attack_dir: str | os.PathLike[str] | None = None, leave_one_out: bool = False,
                          curve: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the protocol; write ``out/detector_eval.json`` and PNG plots; return the JSON document.

    Sources: ``data`` is attacked here (``n_train``/``n_val``/``n_test`` source images, default 1000/500/1000, or
    0 train images when ``detectors`` is empty) with ``attacks`` (default ``DEFAULT_ATTACKS``); or ``attack_dir``
    (instead of ``data``) holds folders written by ``fakescope attack``, whose distinct originals are the sources,
    split by source group (an original and all its attacked copies on one side) into validation (``n_val``,
    default 0.2 of the groups: the thresholds), test (``n_test``, default 0.4, or 0.8 with no ``detectors``) and
    train (the rest, at most ``n_train`` groups): numbers of groups (>= 1) or fractions (< 1); ``attacks`` then
    picks folders by tag.

    ``train_attacks``: tags (e.g. ``pgd-eps8``) to train attack-trained detectors on (default: all attacks; each
    is one training run). ``detector_kw[name]`` passes options to a detector (e.g. ``{"residual-cnn":
    {"epochs": 4}}``). ``negatives``: residual-cnn degrades clean training images only (``--augment negatives``).
    ``checkpoints``: trained ``task adversarial`` checkpoints, evaluated as they are (never refitted) at their
    calibrated threshold and at ``fpr`` on the clean validation images. ``adaptive``: the (attack family, ε) whose
    detector the adaptive PGD targets, or ``None``. ``leave_one_out``: also ``families.leave_one_family_out`` of
    residual-cnn. ``curve``: ``adaptive.adaptive_curve`` keywords (plus ``n``, test images) for each checkpoint at
    its own threshold. Always: per-family tables and, for guarded checkpoints, ``families.guarded_components``.
    """
    t0 = time.perf_counter()
    say = printer(quiet, "[adversarial-benchmark]")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    net, victim_name = _victim(victim_ckpt)
    loaded = _load_checkpoints(checkpoints, net, fpr)
    b, data_name = _sources(net, data, attack_dir, split, n_train, n_val, n_test, attacks, attack_kw,
                            bool(detectors), seed, say)
    b.mark_fooled(net)
    fitted, skipped = _fit_detectors(b, net, detectors, _train_tags(b, train_attacks), detector_kw or {},
                                     negatives, fpr, seed, say)
    ckpts, ckpt_info = checkpoint_detectors(loaded, b.images[b.va], fpr)
    fitted.update({k: {"checkpoint": d} for k, d in ckpts.items()})
    per_attack, cross = _evaluate(b, fitted, ckpt_info)
    noisy = _noisy_negatives(b, fitted, seed, say)
    adaptive_res = {} if adaptive is None else _adaptive(b, net, fitted, adaptive, adaptive_steps, adaptive_lambda,
                                                         seed, say)
    _checkpoint_evidence(ckpts, ckpt_info)
    fam = _family_sections(b, net, per_attack, ckpts, leave_one_out, curve, {"negatives": negatives, **(
        detector_kw or {}).get("residual-cnn", {})}, fpr, seed, say)
    doc: dict[str, Any] = {
        "format": "fakescope-detector-eval/1", "fakescope_version": __version__, "victim": victim_name,
        "data": data_name, "source": "attack_dir" if attack_dir is not None else "attacked here", "split": split,
        "seed": seed, "fpr_target": fpr, "residual_negatives": negatives,
        "sizes": {"train": len(b.tr), "val": len(b.va), "test": len(b.te)},
        "pair_leak_train_test": pair_leak(b.groups[b.tr], b.groups[b.te]),
        "pair_leak_val_test": pair_leak(b.groups[b.va], b.groups[b.te]),
        "attacks": {t: {"attack": s["attack"], "family": s.get("family"), "eps": s["eps"], "norm": s["norm"],
                        **s["stats"]}
                    for t, s in b.sets.items()},
        "per_attack": per_attack, "cross_attack": cross, "checkpoints": ckpt_info,
        "noisy_negatives": noisy, "adaptive": adaptive_res, "skipped": skipped, **fam,
    }
    doc["plots"] = _plots(per_attack, cross, root)
    doc["seconds"] = time.perf_counter() - t0
    write_json(root / "detector_eval.json", doc)
    return doc


def _load_checkpoints(checkpoints: Sequence[str | os.PathLike[str]], net: Net, fpr: float) -> list[CheckpointDetector]:
    loaded = [CheckpointDetector(c, fpr, str(next(net.parameters()).device)) for c in checkpoints]
    for c in loaded:
        if c.model.image_size != net.spec.image_size:
            raise ValueError(f"{c.path} takes {c.model.image_size}px images, the victim {net.spec.image_size}px")
    return loaded


def _train_tags(b: _Bench, train_attacks: Sequence[str] | None) -> list[str]:
    """The attack tags attack-trained detectors are fitted on (default: every attack)."""
    train_tags = list(b.tags if train_attacks is None else train_attacks)
    unknown = sorted(set(train_tags) - set(b.tags))
    if unknown:
        raise ValueError(f"train_attacks {unknown} are not among the attacks {b.tags}")
    return train_tags


def _fit_detectors(b: _Bench, net: Net, detectors: Sequence[str], train_tags: list[str],
                   detector_kw: dict[str, dict[str, Any]], negatives: bool, fpr: float, seed: int,
                   say: Any) -> tuple[dict[str, dict[str, AdversarialDetector]], list[dict[str, str]]]:
    """``{detector: {training tag, or "clean" for clean-only ones: fitted detector}}`` and the skipped runs."""
    fitted: dict[str, dict[str, AdversarialDetector]] = {}
    skipped: list[dict[str, str]] = []
    for name in detectors:
        kw = detector_kw.get(name, {})
        if not create_detector(name, victim_net=net).trains_on_attacks:
            say(f"fit {name} on {len(b.tr)} clean images")
            fitted[name] = {"clean": fit_detector(name, net, b.images[b.tr], None, b.images[b.va], fpr, seed, **kw)}
            continue
        kw = {"negatives": negatives, **kw}
        fitted[name] = {}
        for tag in train_tags:
            if len(b.pairs(tag, b.tr)[0]) < MIN_TRAIN_PAIRS:
                skipped.append({"detector": name, "trained_on": tag, "reason": f"fewer than {MIN_TRAIN_PAIRS} "
                                "changed training pairs (the victim already misclassifies the others)"})
                continue
            say(f"fit {name} on {tag} pairs" + (" (+ degraded clean negatives)" if kw["negatives"] else ""))
            fitted[name][tag] = fit_detector(name, net, *b.pairs(tag, b.tr), b.images[b.va], fpr, seed, **kw)
        if not fitted[name]:
            del fitted[name]
    return fitted, skipped


def _evaluate(b: _Bench, fitted: dict[str, dict[str, AdversarialDetector]], ckpt_info: dict[str, dict[str, Any]]
              ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per-attack rows (a clean-only or checkpoint detector on every attack; an attack-trained one on its own
    training attack) and, per attack-trained detector, the cross-attack grid (train on A, test on B)."""
    per_attack, cross = [], {}
    for name, by_train in fitted.items():
        whole = by_train.get("clean") or by_train.get("checkpoint")  # evaluated on every attack
        if whole is not None:
            for tag in b.tags:
                per_attack.append(_row(name, next(iter(by_train)), tag, b.sets[tag], *_test_pairs(whole, b, tag),
                                       ckpt=ckpt_info.get(name)))
            continue
        scored = {a: {t: _test_pairs(d, b, t) for t in b.tags} for a, d in by_train.items()}
        grid = {a: {t: m for t, (m, _) in row.items()} for a, row in scored.items()}
        cross[name] = {"train": list(grid), "test": b.tags,
                       "auroc": [[grid[a][t]["auroc"] for t in b.tags] for a in grid],
                       "tpr_at_5fpr": [[grid[a][t]["tpr_at_5fpr"] for t in b.tags] for a in grid],
                       "tpr_at_threshold": [[grid[a][t].get("tpr") for t in b.tags] for a in grid]}
        per_attack += [_row(name, a, a, b.sets[a], *scored[a][a]) for a in scored]
    return per_attack, cross


def _test_pairs(det: AdversarialDetector, b: _Bench, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``evaluate_scores`` on the test pairs that attack ``tag`` changed, and its AUROC, TPR at 5% FPR and at the
    threshold on those that fool the victim (``n_fooled`` of them; a failed attack is no threat); every image is
    scored once."""
    s, te = b.sets[tag], b.te
    keep = te[s["changed"][te]]
    clean, attacked = det.score(b.images[keep]), det.score(s["images"][keep])
    fooled = s["fooled"][keep]
    m = evaluate_scores(clean[fooled], attacked[fooled], det.threshold)
    return evaluate_scores(clean, attacked, det.threshold), {
        "n_fooled": m["n_attacked"], "auroc_fooled": m["auroc"], "tpr_at_5fpr_fooled": m["tpr_at_5fpr"],
        "tpr_fooled": m.get("tpr")}


def _noisy_negatives(b: _Bench, fitted: dict[str, dict[str, AdversarialDetector]], seed: int,
                     say: Any) -> dict[str, Any]:
    """Clean-but-processed test images (JPEG, resize; Gaussian noise with each attack's L2 on the test sources it
    changed): their figures, and each fitted detector's false-positive rate on them."""
    say("false-positive rates on clean-but-processed test images")
    te, images = b.te, b.images
    negs = noisy_negatives(images[te], seed=seed)  # JPEG / resize of every clean test image
    families = negatives_summary(images[te], negs)
    for k, t in enumerate(b.tags):
        rows = te[b.sets[t]["changed"][te]]
        negs[f"noise-l2-{t}"] = gaussian_like(images[rows], l2_per_image(images[rows], b.sets[t]["images"][rows]),
                                              seed + k)
        families.update(negatives_summary(images[rows], {f"noise-l2-{t}": negs[f"noise-l2-{t}"]}))
    for k, v in negs.items():
        families[k]["n"] = len(v)
    return {"families": families, "fpr": {f"{n}@{t}": false_positive_rates(d, negs, images[te])
                                          for n, by in fitted.items() for t, d in by.items()}}


def _adaptive(b: _Bench, net: Net, fitted: dict[str, dict[str, AdversarialDetector]], adaptive: tuple[str, float],
              steps: int, lam: float | Sequence[float], seed: int, say: Any) -> dict[str, Any]:
    """``adaptive_evaluation`` of each detector (the one trained on the ``adaptive`` attack where there is one) on
    the clean test sources, against the non-adaptive copies of that attack where the benchmark has them."""
    a_tag = attack_tag(*adaptive)
    out: dict[str, Any] = {}
    for name, by_train in fitted.items():
        det = by_train.get(a_tag) or by_train.get("clean") or next(iter(by_train.values()))
        say(f"adaptive attack on {name}")
        base = b.sets[a_tag]["images"][b.te] if a_tag in b.sets else None
        out[name] = {"detector_trained_on": next(t for t, d in by_train.items() if d is det),
                     **adaptive_evaluation(net, det, b.images[b.te], b.labels[b.te], adaptive[1], base, steps=steps,
                                           lam=lam, seed=seed)}
    return out


def _family_sections(b: _Bench, net: Net, per_attack: list[dict[str, Any]], ckpts: dict[str, CheckpointDetector],
                     leave_one_out: bool, curve: dict[str, Any] | None, residual_kw: dict[str, Any], fpr: float,
                     seed: int, say: Any) -> dict[str, Any]:
    """The family tables, guarded components, and (when asked) leave-one-family-out and the adaptive curve."""
    out: dict[str, Any] = {"families": family_table(per_attack, families(b, net))}
    own = {k: d for k, d in ckpts.items() if not k.endswith(":val-threshold")}
    comps = {k: guarded_components(d, b, net) for k, d in own.items()}
    out["components"] = {k: v for k, v in comps.items() if v is not None}
    if leave_one_out:
        out["leave_one_family_out"] = leave_one_family_out(b, net, "residual-cnn", residual_kw, fpr, seed, say)
    if curve:
        kw = dict(curve)
        te = b.te[: int(kw.pop("n", len(b.te)))]
        out["adaptive_curve"] = {}
        for k, d in own.items():
            say(f"adaptive curve on {k} ({len(te)} test images)")
            out["adaptive_curve"][k] = adaptive_curve(net, d, b.images[te], b.labels[te], seed=seed, **kw)
    return out


def _checkpoint_evidence(ckpts: dict[str, CheckpointDetector], ckpt_info: dict[str, dict[str, Any]]) -> None:
    """Record in ``ckpt_info`` that nothing in the benchmark trained the checkpoints (parameters, weights file)."""
    for name, info in ckpt_info.items():
        info["parameters_unchanged"] = ckpts[name].weights_digest() == info["parameters_sha256"]
        info["weights_file_unchanged"] = checkpoint_hashes(info["path"])["victim_weights_sha256"] == \
            info["weights_file_sha256"]


def _plots(per_attack: list[dict[str, Any]], cross: dict[str, dict[str, Any]], root: Path) -> dict[str, str]:
    """The ε curves (checkpoints at their own threshold only) and a cross-attack heat map per trained detector."""
    plots = {"eps_curves": str(plot_eps_curves([r for r in per_attack if r.get("threshold_source") != "val-fpr"
                                                or r["trained_on"] != "checkpoint"], root / "eps_curves.png"))}
    for name, c in cross.items():
        plots[f"cross_attack_{name}"] = str(plot_cross_attack(c, name, root / f"cross_attack_{name}.png"))
    return plots


def _row(det: str, trained_on: str, tag: str, s: dict[str, Any], m: dict[str, Any],
         fooled: dict[str, Any] | None = None, ckpt: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"detector": det, "trained_on": trained_on, "attack": s["attack"], "eps": s["eps"], "tag": tag,
            "threshold_source": ckpt["threshold_source"] if ckpt else "val-fpr",
            "attack_success_rate": s["stats"].get("success_rate"), **m, **(fooled or {})}
