"""The one torch L∞ PGD: ``pgd_linf``, a batched core minimising a per-image objective, and ``pgd-torch``.

Three callers share the core: the registered attack ``pgd-torch`` (the victim's cross-entropy, as ART's ``pgd``),
``adversarial.adaptive.adaptive_pgd`` (victim hinge + detector hinge, each gradient normalised per image) and
``studies.evasion.attack`` (a binary detector's signed logit; FGSM is one step of ``eps`` without random start).
Images are float [0, 1] NCHW tensors; ``eps`` is in [0, 1] units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...models.net import Net
from .base import LINF_EPS, Attack, register_attack
from .fast import _torch_attack

# objective(x) → per-image losses (N,) to minimise, or several such terms (their gradients are combined)
Objective = Callable[[torch.Tensor], torch.Tensor | Sequence[torch.Tensor]]


def project_linf(x: torch.Tensor, x0: torch.Tensor, eps: float) -> torch.Tensor:
    """Clip ``x`` to the L∞ ball of radius ``eps`` around ``x0``, then to [0, 1]."""
    return torch.minimum(torch.maximum(x, x0 - eps), x0 + eps).clamp(0, 1)


def uniform_noise(x0: torch.Tensor, eps: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform noise in [-eps, eps] shaped like ``x0``, drawn in NCHW order whatever ``x0``'s memory layout (from
    ``generator``, else torch's global RNG)."""
    return eps * (torch.rand(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device) * 2 - 1)


def unit(g: torch.Tensor) -> torch.Tensor:
    """Per-image L2-normalised ``g`` (first axis = images)."""
    return g / g.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *([1] * (g.dim() - 1)))


def descent_direction(objective: Objective, x: torch.Tensor,
                      weights: Sequence[float] | None = None) -> torch.Tensor | None:
    """The gradient of ``objective`` at ``x`` (summed over images, so each image gets its own gradient).

    An objective returning several terms gets ``Σ_k weights[k] · unit(∇ term_k)``: each term pulls with the same
    strength whatever its scale (the combined loss of Carlini & Wagner 2017). Terms that do not depend on ``x``
    are left out; ``None`` when no term does.
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = objective(xg)
        if isinstance(out, torch.Tensor):
            return torch.autograd.grad(out.sum(), xg)[0]
        sums = [t.sum() for t in out]
        ws = [1.0] * len(sums) if weights is None else list(weights)
        grads = [torch.autograd.grad(s, xg, retain_graph=True, allow_unused=True)[0] if s.requires_grad else None
                 for s in sums]
    g = sum(unit(t) * w for t, w in zip(grads, ws, strict=True) if t is not None)
    return g if torch.is_tensor(g) else None


def pgd_linf(objective: Objective, x0: torch.Tensor, eps: float, steps: int, step_size: float | None = None,
             random_start: bool = True, generator: torch.Generator | None = None,
             noise: torch.Tensor | None = None, iterate: str = "point",
             on_step: Callable[[torch.Tensor], bool] | None = None,
             weights: Sequence[float] | None = None) -> torch.Tensor:
    """L∞ projected gradient descent on a batch: ``steps`` signed-gradient steps minimising ``objective``.

    ``step_size`` defaults to ``2.5·eps/steps`` (Madry et al.); ``random_start`` begins at ``x0`` plus ``noise``
    (default ``uniform_noise`` from ``generator``), clipped to [0, 1], else at ``x0``. ``iterate`` is what each
    step moves and projects: ``"point"`` the image, projected onto the ε-ball and then [0, 1] (``project_linf``,
    as ART's PGD), or ``"perturbation"`` δ, projected onto the ε-ball only and evaluated at ``clip(x0 + δ, 0, 1)``
    (δ may leave the box where ``x0`` is near 0 or 1, and must then come back before the point moves). After
    each step, ``on_step(x)`` (if given) sees the point, e.g. to keep a best one, and stops the run by returning
    True. ``weights``: see ``descent_direction``. Returns the last point (detached); no ``.grad`` is accumulated.
    """
    if iterate not in ("point", "perturbation"):
        raise ValueError(f"iterate must be 'point' or 'perturbation', got {iterate!r}")
    x0 = x0.detach()
    alpha = 2.5 * eps / max(1, steps) if step_size is None else step_size
    if not random_start:
        delta = torch.zeros_like(x0)
    else:
        delta = uniform_noise(x0, eps, generator) if noise is None else noise
    if iterate == "point":
        z = (x0 + delta).clamp(0, 1) if random_start else x0
        point, project = (lambda t: t), (lambda t: project_linf(t, x0, eps))
    else:
        z = delta
        point, project = (lambda t: (x0 + t).clamp(0, 1)), (lambda t: t.clamp(-eps, eps))
    for _ in range(steps):
        g = descent_direction(objective, point(z), weights)
        if g is not None:
            with torch.no_grad():
                z = project(z - alpha * g.sign())
        if on_step is not None and on_step(point(z)):
            break
    return point(z).detach()


def torch_pgd(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float = LINF_EPS, max_iter: int = 10,
              eps_step: float | None = None, random_start: bool = True) -> torch.Tensor:
    """Untargeted L∞ PGD raising the cross-entropy of ``model``'s logits at the true ``labels``."""
    y = labels.to(x.device).long()
    return pgd_linf(lambda xa: -F.cross_entropy(model(xa), y, reduction="none"), x, eps, max_iter, eps_step,
                    random_start)


@register_attack("pgd-torch", doc="Batched torch PGD (L∞): 10 steps of 2.5·eps/10 from one random start, raising "
                 "the victim's cross-entropy (ART's pgd, without ART).")
def _pgd_torch(victim_net: Net, eps: float = LINF_EPS, max_iter: int = 10, eps_step: float | None = None,
               random_start: bool = True) -> Attack:
    params = {"eps": eps, "max_iter": max_iter, "eps_step": 2.5 * eps / max_iter if eps_step is None else eps_step,
              "random_start": random_start}
    return _torch_attack("pgd-torch", victim_net, torch_pgd, params, norm="linf", eps=eps)

