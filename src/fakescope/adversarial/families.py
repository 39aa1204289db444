"""Attack families in the benchmark: per-family tables, leave-one-family-out training, and which part of a
``guarded`` detector reacts to which family.

- ``family_table``: per family (``attacks.base.FAMILIES``), the per-attack rows of each detector.
- ``leave_one_family_out``: an attack-trained detector (residual-cnn) fitted on the pooled training pairs of
  every attack OUTSIDE family X, judged on X's test pairs (AUROC, TPR at 5% FPR and at its threshold); beside
  it, the same detector fitted on every family (``all``), so the gap is what holding X out costs.
- ``guarded_components``: the two raw parts of a guarded checkpoint (residual logit, -log victim margin),
  standardised as the checkpoint does (``center``/``scale`` fitted on clean calibration images), per family:
  median on clean and attacked test images and the AUROC of each part alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models import load_checkpoint
from ..models.net import Net
from .attacks.base import ATTACKS, attack_family
from .detectors.checkpoint import CheckpointDetector
from .protocol import evaluate_detector, evaluate_scores, fit_detector


def family_of(s: dict[str, Any], net: Net) -> str:
    """The family an attack set records (manifests since the family field), else its registered attack's."""
    if s.get("family"):
        return str(s["family"])
    return attack_family(s["attack"], net) if s["attack"] in ATTACKS else "unknown"


def families(b: Any, net: Net) -> dict[str, str]:
    """``{tag: family}`` of the benchmark's attack sets (``b``: ``benchmark._Bench``)."""
    return {t: family_of(b.sets[t], net) for t in b.tags}


def family_table(per_attack: list[dict[str, Any]], fams: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """``{family: [per-attack rows, with their ε]}``: the benchmark's rows grouped by attack family."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in per_attack:
        out.setdefault(fams.get(r["tag"], "unknown"), []).append(
            {k: r.get(k) for k in ("detector", "trained_on", "tag", "eps", "attack_success_rate", "auroc",
                                   "tpr_at_5fpr", "tpr", "fpr", "n_fooled", "auroc_fooled", "tpr_fooled")})
    return dict(sorted(out.items()))


def _pooled(b: Any, tags: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, attacked, source groups) of the training pairs of every attack in ``tags``, pooled."""
    keep = [b.tr[b.sets[t]["changed"][b.tr]] for t in tags]
    clean = np.concatenate([b.images[k] for k in keep])
    adv = np.concatenate([b.sets[t]["images"][k] for t, k in zip(tags, keep, strict=True)])
    return clean, adv, np.concatenate([b.groups[k] for k in keep])


def leave_one_family_out(b: Any, net: Net, detector: str = "residual-cnn", detector_kw: dict[str, Any] | None = None,
                         fpr: float = 0.05, seed: int = 0, say: Any = None) -> dict[str, Any]:
    """Fit ``detector`` once on every family and once without each family X; AUROC etc. on each test attack."""
    fams = families(b, net)
    runs: dict[str, dict[str, Any]] = {}
    for held in ["all", *sorted(set(fams.values()))]:
        train_tags = [t for t in b.tags if fams[t] != held]
        if not train_tags:
            continue
        clean, adv, groups = _pooled(b, train_tags)
        if say:
            say(f"leave-one-family-out: {detector} without {held} ({len(clean)} pairs of {len(train_tags)} attacks)")
        det = fit_detector(detector, net, clean, adv, b.images[b.va], fpr, seed, groups=groups, **(detector_kw or {}))
        runs[held] = {"trained_on": train_tags, "n_pairs": len(clean),
                      "test": {t: evaluate_detector(det, *b.pairs(t, b.te)) for t in b.tags}}
    table = []
    for held in sorted(set(fams.values())):
        if held not in runs:
            continue
        for t in (t for t in b.tags if fams[t] == held):
            lo, al = runs[held]["test"][t], runs["all"]["test"][t]
            table.append({"family": held, "tag": t, "auroc_held_out": lo["auroc"], "auroc_all": al["auroc"],
                          "tpr_at_5fpr_held_out": lo["tpr_at_5fpr"], "tpr_at_5fpr_all": al["tpr_at_5fpr"],
                          "tpr_at_threshold_held_out": lo.get("tpr"), "fpr_at_threshold_held_out": lo.get("fpr")})
    return {"detector": detector, "families": fams, "runs": runs, "table": table}


def guarded_components(ckpt: CheckpointDetector, b: Any, net: Net) -> dict[str, Any] | None:
    """Standardised residual and victim-margin parts of a guarded checkpoint per attack (``None``: not guarded)."""
    from .detectors.guarded import components

    gnet, _ = load_checkpoint(ckpt.path)
    if gnet.spec.arch != "guarded":
        return None
    center, scale = gnet.body.center.numpy(), gnet.body.scale.numpy()

    def std(images: np.ndarray) -> np.ndarray:
        return (components(gnet, images) - center) / scale

    clean = std(b.images[b.te])
    fams = families(b, net)
    per: dict[str, Any] = {}
    for t in b.tags:
        c, a = b.pairs(t, b.te)
        sc, sa = std(c), std(a)
        per[t] = {"family": fams[t], "n": len(a),
                  "residual_median_clean": float(np.median(sc[:, 0])) if len(sc) else None,
                  "residual_median_attacked": float(np.median(sa[:, 0])) if len(sa) else None,
                  "margin_median_clean": float(np.median(sc[:, 1])) if len(sc) else None,
                  "margin_median_attacked": float(np.median(sa[:, 1])) if len(sa) else None,
                  "auroc_residual": evaluate_scores(sc[:, 0], sa[:, 0])["auroc"],
                  "auroc_margin": evaluate_scores(sc[:, 1], sa[:, 1])["auroc"],
                  "auroc_guarded": evaluate_scores(ckpt.score(c), ckpt.score(a))["auroc"]}
    return {"checkpoint": ckpt.path, "clean_median": [float(v) for v in np.median(clean, 0)], "per_attack": per}
