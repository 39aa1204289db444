"""Evaluation protocol for adversarial-image detectors, as plain functions returning dicts.

Everything is indexed by SOURCE image: attacked copy ``adv[i]`` belongs to ``clean[i]`` and shares its group, and
splits are drawn over sources, so an original and its attacked copy always sit on the same side. Thresholds are
set at a target false-positive rate (default 5%) on CLEAN VALIDATION images, never on training or test images.
Images are uint8 NHWC throughout; ``eps`` is in [0, 1] units (8/255 = 8 grey levels).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from ..evaluation.metrics import tpr_at_fpr
from ..models.net import Net
from .attacks.base import create_attack, run_attack
from .detectors.base import AdversarialDetector, create_detector, threshold_at_fpr
from .detectors.checkpoint import CheckpointDetector

LINF_FAMILIES = ("fgsm", "bim", "pgd")
EPS_GRID = (2 / 255, 4 / 255, 8 / 255)
DEFAULT_ATTACKS: tuple[tuple[str, float | None], ...] = (
    *((a, e) for a in LINF_FAMILIES for e in EPS_GRID), ("deepfool-fast", None), ("cw-l2-fast", None))
JPEG_QUALITIES = (75, 85, 95)
RESIZE_FACTORS = (0.5, 0.75)


def attack_tag(name: str, eps: float | None) -> str:
    """``fgsm-eps8`` for bounded attacks (ε in grey levels), the bare name for minimum-norm ones."""
    return name if eps is None else f"{name}-eps{round(eps * 255, 3):g}"


def build_attack_sets(victim: Net, images: np.ndarray, labels: np.ndarray,
                      attacks: Sequence[tuple[str, float | None]] = DEFAULT_ATTACKS, batch_size: int = 256,
                      seed: int = 0, attack_kw: dict[str, dict[str, Any]] | None = None,
                      say: Any = None) -> dict[str, dict[str, Any]]:
    """Attack every image once per ``(attack, eps)`` → ``{tag: {attack, eps, images, changed, stats}}``.

    ``images`` (uint8) are attacked with the registry's attacks (``attack_kw[name]`` overrides their options);
    ``changed[i]`` tells whether the stored uint8 copy differs from ``images[i]`` (minimum-norm attacks leave
    images the victim already gets wrong untouched).
    """
    out: dict[str, dict[str, Any]] = {}
    for name, eps in attacks:
        tag = attack_tag(name, eps)
        if say:
            say(f"attack {tag} on {len(images)} images")
        t0 = time.perf_counter()
        atk = create_attack(name, victim, eps=eps, **(attack_kw or {}).get(name, {}))
        adv, stats = run_attack(victim, images, labels, atk, batch_size=batch_size, seed=seed)
        changed = (adv != images).reshape(len(adv), -1).any(1)
        out[tag] = {"attack": name, "family": atk.family, "eps": atk.eps, "norm": atk.norm, "images": adv,
                    "changed": changed, "stats": {**stats, "seconds": time.perf_counter() - t0}}
    return out


def attack_sets_from_dirs(root: str | os.PathLike[str], size: int | None = None, split: str = "test",
                          only: Sequence[str] | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, dict[str, Any]]]:
    """Attack folders written by ``fakescope attack`` (``root`` itself, ``root/split`` or its sub-folders, as
    ``data.attacksets.find_attack_dirs``) → ``(sources, labels, groups, sets)`` in ``build_attack_sets``' layout.

    Sources are the distinct originals (byte-identical ones are one source), in first-seen order; ``labels`` the
    victim labels the folders record. ``groups`` ties sources as ``load_attack_sets`` does (recorded source index,
    or bytes), so splitting by group never separates an original from any of its attacked copies. ``sets[tag]``
    (tag from the manifest's attack and ε, e.g. ``pgd-eps8``, else the folder name) holds each source's attacked
    copy where that folder has one, else the original with ``changed`` False (left out of every pair).
    ``only``: keep these tags. Manifest hashes are verified (``read_attack_dir``).
    """
    from ..data.attacksets import _Groups, _source_keys, find_attack_dirs, image_digests, read_attack_dir
    from ..data.imageset import DataError

    dirs = find_attack_dirs(root, split)
    if not dirs:
        raise DataError(f"{root}: no attack folder (originals.npz + attacked.npz) here or one level below")
    uf, index = _Groups(), {}
    src, src_labels, src_gid, found = [], [], [], []
    for d in dirs:
        orig, adv, labels, manifest = read_attack_dir(d, size)
        tag = attack_tag(manifest["attack"], manifest.get("eps")) if "attack" in manifest else d.name
        if only is not None and tag not in only:
            continue
        if tag in (f[0] for f in found):
            raise DataError(f"{d}: attack {tag} appears twice under {root}")
        if (labels < 0).any():
            raise DataError(f"{d}: no victim labels stored (the adaptive attack and success rates need them)")
        rows = np.empty(len(orig), np.int64)
        for i, (dg, key) in enumerate(zip(image_digests(orig), _source_keys(d, manifest, len(orig)), strict=True)):
            if dg not in index:
                index[dg] = len(src)
                src.append(orig[i])
                src_labels.append(labels[i])
                src_gid.append(uf.id(("img", dg)))
            uf.union(src_gid[index[dg]], uf.id(("src", key)))
            rows[i] = index[dg]
        found.append((tag, d, adv, rows, manifest))
    missing = sorted(set(only or ()) - {f[0] for f in found})
    if missing or not found:
        raise DataError(f"{root}: no attack folder for {missing or 'any attack'}")
    images = np.stack(src)
    _, groups = np.unique([uf.find(g) for g in src_gid], return_inverse=True)
    sets: dict[str, dict[str, Any]] = {}
    for tag, d, adv, rows, manifest in found:
        out, changed = images.copy(), np.zeros(len(images), bool)
        out[rows] = adv
        changed[rows] = (adv != images[rows]).reshape(len(rows), -1).any(1)
        sets[tag] = {"attack": manifest.get("attack", d.name), "family": manifest.get("family"),
                     "eps": manifest.get("eps"), "norm": manifest.get("norm"), "images": out, "changed": changed,
                     "stats": {**(manifest.get("stats") or {}), "folder": str(d), "n_sources": len(rows)}}
    return images, np.asarray(src_labels, np.int64), groups.astype(np.int64), sets


def group_split(groups: np.ndarray, val: float = 0.2, test: float = 0.2, seed: int = 0,
                min_train: int = 1) -> dict[str, np.ndarray]:
    """Indices of ``train``/``val``/``test`` items, drawn by group: every group lands in exactly one part.

    ``val`` and ``test`` are fractions of the groups (< 1) or numbers of groups (>= 1); train gets the rest, at
    least ``min_train`` groups (0 allows an empty train part).
    """
    g = np.asarray(groups)
    uniq = np.random.default_rng(seed).permutation(np.unique(g))
    n_val, n_test = (int(v) if v >= 1 else int(round(v * len(uniq))) for v in (val, test))
    if n_val + n_test > len(uniq) - min_train:
        raise ValueError(f"{len(uniq)} groups cannot give {n_val} validation + {n_test} test groups and a train part")
    parts = {"test": uniq[:n_test], "val": uniq[n_test:n_test + n_val], "train": uniq[n_test + n_val:]}
    return {k: np.flatnonzero(np.isin(g, v)) for k, v in parts.items()}


def pair_leak(train_groups: np.ndarray, test_groups: np.ndarray) -> float:
    """Fraction of test items whose group (source image) also appears in train: 0 for a group-aware split."""
    t = np.asarray(test_groups)
    return float(np.isin(t, np.asarray(train_groups)).mean()) if len(t) else 0.0


def evaluate_scores(clean_scores: np.ndarray, attacked_scores: np.ndarray,
                    threshold: float | None = None) -> dict[str, Any]:
    """AUROC, AUPR (attacked = positive), TPR at 1% / 5% FPR, and accuracy/TPR/FPR at ``threshold``."""
    sc, sa = np.asarray(clean_scores, np.float64), np.asarray(attacked_scores, np.float64)
    y, s = np.r_[np.zeros(len(sc)), np.ones(len(sa))], np.r_[sc, sa]
    both = len(sc) > 0 and len(sa) > 0
    tpr1, tpr5 = tpr_at_fpr(y, s, (0.01, 0.05), drop_intermediate=True)[0].values() if both else (None, None)
    out: dict[str, Any] = {
        "n_clean": len(sc), "n_attacked": len(sa),
        "auroc": float(roc_auc_score(y, s)) if both else None,
        "aupr": float(average_precision_score(y, s)) if both else None,
        "tpr_at_1fpr": tpr1, "tpr_at_5fpr": tpr5,
    }
    if threshold is not None and len(s):
        out.update(threshold=float(threshold), accuracy=float(accuracy_score(y, s > threshold)),
                   tpr=float((sa > threshold).mean()) if len(sa) else None,
                   fpr=float((sc > threshold).mean()) if len(sc) else None)
    return out


def evaluate_detector(det: AdversarialDetector, clean_test: np.ndarray, attacked_test: np.ndarray,
                      threshold: float | None = None) -> dict[str, Any]:
    """``evaluate_scores`` of a fitted detector; accuracy/TPR/FPR at its shipped threshold unless given one."""
    return evaluate_scores(det.score(clean_test), det.score(attacked_test),
                           det.threshold if threshold is None else threshold)


def fit_detector(name: str, victim: Net, clean_train: np.ndarray, attacked_train: np.ndarray | None,
                 clean_val: np.ndarray, fpr: float = 0.05, seed: int = 0, groups: np.ndarray | None = None,
                 **kw: Any) -> AdversarialDetector:
    """Create and fit detector ``name`` on training pairs (clean images only unless it ``trains_on_attacks``),
    then set its threshold at ``fpr`` on ``clean_val``. ``groups``: source ids of the pairs (pooled attacks repeat
    a source; its copies then stay on one side of the detector's own validation split)."""
    det = create_detector(name, victim_net=victim, fpr=fpr, seed=seed, **kw)
    if det.trains_on_attacks:
        if attacked_train is None:
            raise ValueError(f"{name} needs attacked training images")
        det.fit(clean_train, attacked_train, groups)
    else:
        det.fit(clean_train)
    det.threshold = threshold_at_fpr(det.score(clean_val), fpr)
    return det


def checkpoint_detectors(loaded: Sequence[CheckpointDetector], clean_val: np.ndarray, fpr: float = 0.05
                         ) -> tuple[dict[str, CheckpointDetector], dict[str, dict[str, Any]]]:
    """Each trained checkpoint twice, never refitted: at its own calibrated threshold (``checkpoint:<run>``,
    ``threshold_source`` "checkpoint") and at ``fpr`` on the clean validation images
    (``checkpoint:<run>:val-threshold``, "val-fpr"); with the validation FPR at each threshold and the hashes that
    show its weights stay as trained. ``<run>`` is the run folder for ``.../<run>/model.json``, else the stem."""
    from .manifest import checkpoint_hashes

    dets: dict[str, CheckpointDetector] = {}
    info: dict[str, dict[str, Any]] = {}
    for c in loaded:
        p = Path(c.path)
        label = p.parent.name if p.stem == "model" and p.parent.name else p.stem
        key, k = f"checkpoint:{label}", 2
        while key in dets:
            key, k = f"checkpoint:{label}-{k}", k + 1
        val = c.score(clean_val)
        spec = c.model.net.spec
        common = {"path": c.path, "arch": spec.arch, "tta": c.model.tta, "temperature": spec.temperature,
                  "checkpoint_threshold": c.checkpoint_threshold, "n_val": len(val),
                  "weights_file_sha256": checkpoint_hashes(c.path)["victim_weights_sha256"],
                  "parameters_sha256": c.weights_digest()}
        for name, source, thr in ((key, "checkpoint", c.checkpoint_threshold),
                                  (f"{key}:val-threshold", "val-fpr", threshold_at_fpr(val, fpr))):
            dets[name] = c.with_threshold(thr)
            info[name] = {**common, "threshold_source": source, "threshold": thr,
                          "val_fpr_at_threshold": float((val > thr).mean()) if len(val) else None}
    return dets, info


def gaussian_like(clean: np.ndarray, l2: np.ndarray, seed: int = 0) -> np.ndarray:
    """Clean images plus Gaussian noise whose per-image L2 ([0, 1] units) is ``l2[i]`` before rounding to uint8."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(clean.shape)
    norm = np.linalg.norm(z.reshape(len(z), -1), axis=1).clip(1e-12)
    z *= (np.asarray(l2, np.float64) * 255.0 / norm)[:, None, None, None]
    return np.clip(np.rint(clean.astype(np.float64) + z), 0, 255).astype(np.uint8)


def l2_per_image(clean: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """Per-image L2 norm of ``adv - clean`` in [0, 1] units."""
    d = (adv.astype(np.float64) - clean.astype(np.float64)).reshape(len(clean), -1) / 255.0
    return np.linalg.norm(d, axis=1)


def noisy_negatives(clean: np.ndarray, l2_by_attack: dict[str, np.ndarray] | None = None,
                    qualities: Sequence[int] = JPEG_QUALITIES, factors: Sequence[float] = RESIZE_FACTORS,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Clean-but-processed images a detector must NOT flag: JPEG re-encodes, down-up resizes, and Gaussian noise
    with the same per-image L2 as each attack's perturbation (``l2_by_attack[tag]``, one value per image)."""
    from ..data.transforms import jpeg, rescale

    out = {f"jpeg-q{q}": jpeg(clean, q) for q in qualities}
    out.update({f"resize-x{f:g}": rescale(clean, f) for f in factors})
    for k, (tag, l2) in enumerate((l2_by_attack or {}).items()):
        out[f"noise-l2-{tag}"] = gaussian_like(clean, l2, seed + k)
    return out


def false_positive_rates(det: AdversarialDetector, negatives: dict[str, np.ndarray],
                         clean: np.ndarray | None = None) -> dict[str, float]:
    """Share of each negative family flagged at the detector's shipped threshold (plus plain clean images)."""
    fams = ({"clean": clean} if clean is not None else {}) | negatives
    return {k: float(det.detect(v).mean()) if len(v) else float("nan") for k, v in fams.items()}


def negatives_summary(clean: np.ndarray, negatives: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Mean L2 / L∞ ([0, 1] units) and share of pixels changed for each negative family."""
    out = {}
    for k, v in negatives.items():
        d = np.abs(v.astype(np.int16) - clean.astype(np.int16))
        out[k] = {"l2_mean": float(l2_per_image(clean, v).mean()) if len(v) else 0.0,
                  "linf_mean": float(d.reshape(len(d), -1).max(1).mean() / 255) if len(v) else 0.0,
                  "pixels_changed": float((d > 0).mean()) if len(v) else 0.0}
    return out
