"""Adaptive attack: L∞ PGD against the victim AND a differentiable detector at once.

Each step follows ``-(ĝ_victim + λ·ĝ_detector)``, the per-image L2-normalised gradients of two hinge losses:
``relu(z_y - max_{j≠y} z_j)`` (the victim still right) and ``relu(score - threshold)`` (the detector still
firing). A term stops pulling once it is satisfied, and normalising makes λ independent of the scale of the
detector's score (a logit for residual-cnn, a squared distance for Mahalanobis): the combined-loss attack of
Carlini & Wagner (2017, "Adversarial examples are not easily detected"), in its ``CE - λ·score`` spirit.
Every step is judged on the ROUNDED uint8 image (what an attacker would save), kept within ε (L∞) of the
original; per image, the first rounded point that both fools the victim and scores at or below the threshold is
kept. A trained checkpoint (``CheckpointDetector``, score = calibrated probability) is attacked through its
log-odds against the log-odds of its threshold: the same decision, without the float32 sigmoid's vanishing
gradient on confidently detected images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..models.net import Net
from .attacks.base import VictimLogits, seeded
from .attacks.stats import predict
from .detectors.base import AdversarialDetector
from .detectors.checkpoint import CheckpointDetector
from .detectors.mahalanobis import Mahalanobis
from .detectors.residual import ResidualCNN

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def differentiable_score(det: AdversarialDetector) -> ScoreFn | None:
    """A torch function float [0, 1] NCHW → the detector's score (as ``det.score``), or ``None`` when the
    detector is not differentiable (feature squeezing rounds bit depth and takes medians)."""
    if isinstance(det, CheckpointDetector):
        return lambda x: torch.sigmoid(det.log_odds(x))
    if isinstance(det, ResidualCNN) and det.net is not None:
        rnet = det.net.eval()
        return lambda x: rnet.logits(x).reshape(len(x))
    if isinstance(det, Mahalanobis) and det.means.size:
        module = dict(det.net.named_modules())[det.layer]
        mu, prec = torch.from_numpy(det.means), torch.from_numpy(det.precision)

        def maha(x: torch.Tensor) -> torch.Tensor:
            grabbed: list[torch.Tensor] = []
            handle = module.register_forward_pre_hook(lambda _m, args: grabbed.append(args[0].flatten(1)))
            try:
                det.net.eval()(x)
            finally:
                handle.remove()
            d = grabbed[0].double()[:, None, :] - mu.to(x.device)[None]
            return torch.einsum("nkd,de,nke->nk", d, prec.to(x.device), d).min(1).values

        return maha
    return None


def attack_objective(det: AdversarialDetector) -> tuple[ScoreFn, float] | None:
    """(score function, threshold) that adaptive PGD pushes below: the log-odds and the threshold's log-odds for a
    probability-scored checkpoint, else ``differentiable_score`` and ``det.threshold``; ``None`` if not
    differentiable."""
    if isinstance(det, CheckpointDetector):
        t = min(max(det.threshold, 1e-12), 1.0 - 1e-12)
        return det.log_odds, math.log(t / (1.0 - t))
    fn = differentiable_score(det)
    return None if fn is None else (fn, det.threshold)


def _round_project(x: torch.Tensor, x0: torch.Tensor, eps: float) -> torch.Tensor:
    """Round to grey levels, keeping every value within ``eps`` of ``x0`` and inside [0, 1]."""
    q = torch.round(x * 255.0)
    lo = torch.ceil((x0 - eps) * 255.0 - 1e-6).clamp(min=0)
    hi = torch.floor((x0 + eps) * 255.0 + 1e-6).clamp(max=255)
    return torch.minimum(torch.maximum(q, lo), hi) / 255.0


def _unit(g: torch.Tensor) -> torch.Tensor:
    return g / g.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *([1] * (g.dim() - 1)))


def adaptive_pgd(victim: Net, score_fn: ScoreFn, images: np.ndarray, labels: np.ndarray, eps: float,
                 threshold: float, steps: int = 20, step_size: float | None = None, lam: float = 1.0,
                 batch_size: int = 256, seed: int = 0) -> np.ndarray:
    """uint8 NHWC adversarials within ``eps`` (L∞) of ``images``, aiming to fool ``victim`` and evade the detector.

    ``step_size`` defaults to ``2.5·eps/steps`` (Madry et al.); one uniform random start; ``lam`` weighs the
    detector's (normalised) gradient against the victim's.
    """
    alpha = 2.5 * eps / steps if step_size is None else step_size
    model = VictimLogits(victim.eval())
    device = next(victim.parameters()).device
    out = images.copy()
    y_all = torch.from_numpy(np.asarray(labels, np.int64))
    with seeded(seed), torch.enable_grad():
        for i in range(0, len(images), batch_size):
            x0 = torch.from_numpy(images[i:i + batch_size]).permute(0, 3, 1, 2).float().div(255.0).to(device)
            y = y_all[i:i + batch_size].to(device)
            onehot = torch.nn.functional.one_hot(y, model(x0[:1]).shape[1]).float()
            delta = torch.empty_like(x0).uniform_(-eps, eps)
            best = _round_project((x0 + delta).clamp(0, 1), x0, eps)
            done = torch.zeros(len(x0), dtype=torch.bool, device=device)
            for _ in range(steps):
                xa = (x0 + delta).clamp(0, 1).requires_grad_(True)
                z = model(xa)
                victim_loss = ((z * onehot).sum(1) - (z - 1e9 * onehot).amax(1)).clamp(min=0).sum()
                det_loss = (score_fn(xa) - threshold).clamp(min=0).sum()
                gv, gd = (torch.autograd.grad(lo, xa, retain_graph=True, allow_unused=True)[0]
                          if lo.requires_grad else None for lo in (victim_loss, det_loss))
                g = sum(_unit(t) * w for t, w in ((gv, 1.0), (gd, lam)) if t is not None)
                delta = (delta - alpha * torch.sign(g)).clamp(-eps, eps).detach() if torch.is_tensor(g) else delta
                with torch.no_grad():
                    q = _round_project((x0 + delta).clamp(0, 1), x0, eps)
                    ok = (model(q).argmax(1) != y) & (score_fn(q) <= threshold)
                    take = ~done
                    best[take] = q[take]  # the latest point until one succeeds, then the first success
                    done |= ok
                if bool(done.all()):
                    break
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
    objective = attack_objective(det)
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
