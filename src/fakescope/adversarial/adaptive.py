"""Adaptive attack: L∞ PGD (``attacks.pgd.pgd_linf``) against the victim AND a differentiable detector at once.

Each step follows ``-(ĝ_victim + λ·ĝ_detector)``, the per-image L2-normalised gradients of two hinge losses:
``relu(z_y - max_{j≠y} z_j)`` (the victim still right) and ``relu(score - threshold)`` (the detector still
firing). A term stops pulling once it is satisfied, and normalising makes λ independent of the scale of the
detector's score (a logit for residual-cnn, a squared distance for Mahalanobis): the combined-loss attack of
Carlini & Wagner (2017, "Adversarial examples are not easily detected"), in its ``CE - λ·score`` spirit.
Every step is judged on the ROUNDED uint8 image (what an attacker would save), kept within ε (L∞) of the
original; per image, the first rounded point that both fools the victim and scores at or below the threshold is
kept. The score and threshold come from the detector's ``attack_objective()`` (a trained checkpoint offers its
log-odds against the log-odds of its threshold: the same decision, without the float32 sigmoid's vanishing
gradient on confidently detected images); a detector without one gets a note instead of an attack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..models.net import Net
from .attacks.base import VictimLogits, seeded
from .attacks.pgd import pgd_linf
from .attacks.stats import predict
from .detectors.base import AdversarialDetector, ScoreFn


def _round_project(x: torch.Tensor, x0: torch.Tensor, eps: float) -> torch.Tensor:
    """Round to grey levels, keeping every value within ``eps`` of ``x0`` and inside [0, 1]."""
    q = torch.round(x * 255.0)
    lo = torch.ceil((x0 - eps) * 255.0 - 1e-6).clamp(min=0)
    hi = torch.floor((x0 + eps) * 255.0 + 1e-6).clamp(max=255)
    return torch.minimum(torch.maximum(q, lo), hi) / 255.0


def _adaptive_batch(model: VictimLogits, score_fn: ScoreFn, x0: torch.Tensor, y: torch.Tensor, eps: float,
                    threshold: float, steps: int, step_size: float | None, lam: float,
                    trace: list[list[float]] | None = None) -> torch.Tensor:
    """One batch of ``adaptive_pgd``: the rounded points, per image the first success, else the last one.
    ``trace`` gets, per step, [summed victim hinge, summed detector hinge, images won so far] at the rounded point."""
    onehot = torch.nn.functional.one_hot(y, model(x0[:1]).shape[1]).float()

    def hinges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = model(x)
        return ((z * onehot).sum(1) - (z - 1e9 * onehot).amax(1)).clamp(min=0), (score_fn(x) - threshold).clamp(min=0)

    best = x0.clone()
    done = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)

    def judge(x: torch.Tensor) -> bool:
        nonlocal done
        with torch.no_grad():
            q = _round_project(x, x0, eps)
            zq, sq = model(q), score_fn(q)
            ok = (zq.argmax(1) != y) & (sq <= threshold)
            best[~done] = q[~done]  # the latest point until one succeeds, then the first success
            done = done | ok
            if trace is not None:
                vh = ((zq * onehot).sum(1) - (zq - 1e9 * onehot).amax(1)).clamp(min=0)
                trace.append([float(vh.sum()), float((sq - threshold).clamp(min=0).sum()), float(done.sum())])
        return bool(done.all()) and trace is None  # a traced run goes on: the losses show whether it converged

    noise = torch.empty_like(x0).uniform_(-eps, eps)  # in x0's (NHWC) memory order, as seeded runs always drew it
    last = pgd_linf(hinges, x0, eps, steps, step_size, noise=noise, iterate="perturbation", on_step=judge,
                    weights=(1.0, lam))
    return best if steps else _round_project(last, x0, eps)


def adaptive_pgd(victim: Net, score_fn: ScoreFn, images: np.ndarray, labels: np.ndarray, eps: float,
                 threshold: float, steps: int = 20, step_size: float | None = None, lam: float = 1.0,
                 batch_size: int = 256, seed: int = 0, trace: list[list[float]] | None = None) -> np.ndarray:
    """uint8 NHWC adversarials within ``eps`` (L∞) of ``images``, aiming to fool ``victim`` and evade the detector.

    ``pgd_linf`` on the two hinges (weights 1 and ``lam``), moving the perturbation (``iterate="perturbation"``);
    ``step_size`` defaults to ``2.5·eps/steps`` (Madry et al.); one uniform random start (torch's RNG, seeded
    with ``seed``). ``trace``: see ``_adaptive_batch`` (one list of steps per batch, appended in turn).
    """
    model = VictimLogits(victim.eval())
    device = next(victim.parameters()).device
    out = images.copy()
    y_all = torch.from_numpy(np.asarray(labels, np.int64))
    with seeded(seed), torch.enable_grad():
        for i in range(0, len(images), batch_size):
            x0 = torch.from_numpy(images[i:i + batch_size]).permute(0, 3, 1, 2).float().div(255.0).to(device)
            part: list[list[float]] | None = None if trace is None else []
            best = _adaptive_batch(model, score_fn, x0, y_all[i:i + batch_size].to(device), eps, threshold, steps,
                                   step_size, lam, part)
            if trace is not None:
                trace.extend(part or [])
            out[i:i + batch_size] = torch.round(best * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return out


def evasion_rates(victim: Net, det: AdversarialDetector, clean: np.ndarray, adv: np.ndarray,
                  labels: np.ndarray) -> dict[str, Any]:
    """Among images the victim gets right: share fooled, share not detected, share both (the attacker's win)."""
    labels = np.asarray(labels, np.int64)
    correct = predict(victim, clean) == labels
    fooled = predict(victim, adv) != labels
    evaded = ~det.detect(adv)
    n = int(correct.sum())
    rate = (lambda m: float(m[correct].mean()) if n else None)  # noqa: E731
    linf = np.abs(adv.astype(np.int16) - clean.astype(np.int16)).reshape(len(adv), -1).max(1) if len(adv) else [0]
    return {"n": n, "victim_fooled_rate": rate(fooled), "detector_evaded_rate": rate(evaded),
            "fooled_and_evaded_rate": rate(fooled & evaded), "linf_max": float(np.max(linf)) / 255.0}


def adaptive_evaluation(victim: Net, det: AdversarialDetector, clean: np.ndarray, labels: np.ndarray, eps: float,
                        baseline_adv: np.ndarray | None = None, steps: int = 20,
                        lam: float | Sequence[float] = (0.5, 1.0, 2.0), seed: int = 0) -> dict[str, Any]:
    """Adaptive PGD against ``det`` at its shipped threshold, once per λ in ``lam``; per image, the attacker wins
    if any run both fools the victim and evades the detector. ``baseline_adv`` (the same images attacked without
    regard to the detector) gives the non-adaptive rates. Non-differentiable detectors get a note instead."""
    objective = det.attack_objective()
    if objective is None:
        return {"applicable": False, "reason": f"{det.name}'s score is not differentiable (bit-depth rounding, "
                                               "median filter); a BPDA attack would be needed"}
    lams = [float(lam)] if isinstance(lam, (int, float)) else [float(v) for v in lam]
    labels = np.asarray(labels, np.int64)
    adv, won = clean.copy(), np.zeros(len(clean), bool)
    for k, v in enumerate(lams):
        a = adaptive_pgd(victim, objective[0], clean, labels, eps, objective[1], steps=steps, lam=v, seed=seed + k)
        ok = (predict(victim, a) != labels) & ~det.detect(a)
        take = ~won & (ok | (k == 0))  # keep the first run's images where no run wins
        adv[take], won = a[take], won | ok
    res: dict[str, Any] = {"applicable": True, "eps": eps, "steps": steps, "lambdas": lams,
                           "adaptive": evasion_rates(victim, det, clean, adv, labels)}
    if baseline_adv is not None:
        res["non_adaptive"] = evasion_rates(victim, det, clean, baseline_adv, labels)
    return res


def adaptive_curve(victim: Net, det: AdversarialDetector, clean: np.ndarray, labels: np.ndarray,
                   eps_grid: Sequence[float] = (2 / 255, 4 / 255, 8 / 255), steps_grid: Sequence[int] = (5, 10, 20, 50),
                   lam: Sequence[float] = (0.5, 1.0, 2.0, 4.0), seed: int = 0) -> dict[str, Any]:
    """Adaptive evasion rate against attack steps and ε (best of ``lam`` per image, as ``adaptive_evaluation``),
    and, at each ε, the per-step mean hinges of the longest run per λ: whether the attack converged."""
    objective = det.attack_objective()
    if objective is None:
        return {"applicable": False, "reason": f"{det.name}'s score is not differentiable"}
    labels = np.asarray(labels, np.int64)
    points, traces = [], {}
    for eps in eps_grid:
        for steps in steps_grid:
            res = adaptive_evaluation(victim, det, clean, labels, eps, None, steps, lam, seed)
            points.append({"eps": eps, "steps": steps, **res["adaptive"]})
        for v in lam:
            tr: list[list[float]] = []
            adaptive_pgd(victim, objective[0], clean, labels, eps, objective[1], steps=max(steps_grid), lam=v,
                         seed=seed, trace=tr)
            n = max(1, len(clean))
            steps_n = max(steps_grid)
            rows = np.asarray(tr, np.float64).reshape(-1, steps_n, 3).sum(0) if tr else np.zeros((0, 3))
            traces[f"eps{round(eps * 255, 3):g}-lam{v:g}"] = {
                "victim_hinge_mean": (rows[:, 0] / n).tolist(), "detector_hinge_mean": (rows[:, 1] / n).tolist(),
                "won_rate": (rows[:, 2] / n).tolist()}
    return {"applicable": True, "lambdas": [float(v) for v in lam], "points": points, "traces": traces,
            "note": "no randomness in the detector (flip TTA is a fixed average), so no EOT is needed; every "
                    "part is differentiable, so no BPDA pass"}
