"""Evaluation protocol for adversarial-image detectors, as plain functions returning dicts.

Everything is indexed by SOURCE image: attacked copy ``adv[i]`` belongs to ``clean[i]`` and shares its group, and
splits are drawn over sources, so an original and its attacked copy always sit on the same side. Thresholds are
set at a target false-positive rate (default 5%) on CLEAN VALIDATION images, never on training or test images.
Images are uint8 NHWC throughout; ``eps`` is in [0, 1] units (8/255 = 8 grey levels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve

from ..models.net import Net
from .attacks import create_attack, run_attack
from .detectors import AdversarialDetector, ResidualCNN, create_detector, threshold_at_fpr

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
        atk = create_attack(name, victim, eps=eps, **(attack_kw or {}).get(name, {}))
        adv, stats = run_attack(victim, images, labels, atk, batch_size=batch_size, seed=seed)
        changed = (adv != images).reshape(len(adv), -1).any(1)
        out[tag] = {"attack": name, "eps": atk.eps, "norm": atk.norm, "images": adv, "changed": changed,
                    "stats": stats}
    return out


def group_split(groups: np.ndarray, val: float = 0.2, test: float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
    """Indices of ``train``/``val``/``test`` items, drawn by group: every group lands in exactly one part.

    ``val`` and ``test`` are fractions of the groups (< 1) or numbers of groups (>= 1); train gets the rest.
    """
    g = np.asarray(groups)
    uniq = np.random.default_rng(seed).permutation(np.unique(g))
    n_val, n_test = (int(v) if v >= 1 else int(round(v * len(uniq))) for v in (val, test))
    if n_val + n_test >= len(uniq):
        raise ValueError(f"{len(uniq)} groups cannot give {n_val} validation + {n_test} test groups and a train part")
    parts = {"test": uniq[:n_test], "val": uniq[n_test:n_test + n_val], "train": uniq[n_test + n_val:]}
    return {k: np.flatnonzero(np.isin(g, v)) for k, v in parts.items()}


def pair_leak(train_groups: np.ndarray, test_groups: np.ndarray) -> float:
    """Fraction of test items whose group (source image) also appears in train: 0 for a group-aware split."""
    t = np.asarray(test_groups)
    return float(np.isin(t, np.asarray(train_groups)).mean()) if len(t) else 0.0


def tpr_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float) -> float:
    """Best true-positive rate over thresholds whose false-positive rate is at most ``fpr`` (ROC read-off)."""
    f, t, _ = roc_curve(y, s)
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


def evaluate_scores(clean_scores: np.ndarray, attacked_scores: np.ndarray,
                    threshold: float | None = None) -> dict[str, Any]:
    """AUROC, AUPR (attacked = positive), TPR at 1% / 5% FPR, and accuracy/TPR/FPR at ``threshold``."""
    sc, sa = np.asarray(clean_scores, np.float64), np.asarray(attacked_scores, np.float64)
    y, s = np.r_[np.zeros(len(sc)), np.ones(len(sa))], np.r_[sc, sa]
    both = len(sc) > 0 and len(sa) > 0
    out: dict[str, Any] = {
        "n_clean": len(sc), "n_attacked": len(sa),
        "auroc": float(roc_auc_score(y, s)) if both else None,
        "aupr": float(average_precision_score(y, s)) if both else None,
        "tpr_at_1fpr": tpr_at_fpr(y, s, 0.01) if both else None,
        "tpr_at_5fpr": tpr_at_fpr(y, s, 0.05) if both else None,
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


def uses_attacks(det: AdversarialDetector) -> bool:
    """Whether a detector is trained on attacked images (then it is fitted once per training attack)."""
    return isinstance(det, ResidualCNN)


def fit_detector(name: str, victim: Net, clean_train: np.ndarray, attacked_train: np.ndarray | None,
                 clean_val: np.ndarray, fpr: float = 0.05, seed: int = 0, **kw: Any) -> AdversarialDetector:
    """Create and fit detector ``name`` on training pairs, then set its threshold at ``fpr`` on ``clean_val``."""
    det = create_detector(name, victim_net=victim, fpr=fpr, **({"seed": seed} if name != "feature-squeeze" else {}),
                          **kw)
    if uses_attacks(det):
        if attacked_train is None:
            raise ValueError(f"{name} needs attacked training images")
        det.fit(clean_train, attacked_train)
    else:
        det.fit(clean_train)
    det.threshold = threshold_at_fpr(det.score(clean_val), fpr)
    return det


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
    from ..studies.perturb import jpeg, rescale

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
