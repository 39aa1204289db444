"""Spatial attack (Engstrom et al. 2019, "Exploring the landscape of spatial robustness"): rotations and
translations found by grid search, batched in torch. No Lp budget: the budget is the largest rotation (degrees)
and translation (pixels); ``eps`` is null and the norm ``spatial``.

Per image, the grid's transforms are tried from the smallest (rotation in units of ``max_rotation`` plus
translation in units of ``max_translation``) up; the first that makes the victim wrong is kept, else the one
that leaves the true class the lowest margin (the worst-of-k of Engstrom et al.). Out-of-frame pixels become
black, as in their paper; the result is rounded to grey levels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...models.net import Net
from .base import Attack, register_attack
from .cw import _margin
from .fast import _torch_attack, quantize


def transform_grid(max_rotation: float, max_translation: int, n_rotations: int) -> list[tuple[float, int, int]]:
    """Every (degrees, dx, dy) of the grid except the identity, cheapest first."""
    rots = [max_rotation * (2 * i / (n_rotations - 1) - 1) for i in range(n_rotations)] if n_rotations > 1 else [0.0]
    shifts = range(-max_translation, max_translation + 1)
    grid = [(r, dx, dy) for r in rots for dx in shifts for dy in shifts if (r, dx, dy) != (0.0, 0, 0)]

    def cost(t: tuple[float, int, int]) -> float:
        return abs(t[0]) / max(max_rotation, 1e-9) + max(abs(t[1]), abs(t[2])) / max(max_translation, 1)

    return sorted(grid, key=lambda t: (cost(t), t))


def rotate_translate(x: torch.Tensor, degrees: float, dx: int, dy: int) -> torch.Tensor:
    """Rotate NCHW ``x`` by ``degrees`` about the centre and shift it by (dx, dy) pixels; black outside the frame."""
    n, _, h, w = x.shape
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a) * h / w, -2 * dx / w],
                          [math.sin(a) * w / h, math.cos(a), -2 * dy / h]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def spatial_search(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, max_rotation: float = 30.0,
                   max_translation: int = 3, n_rotations: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """(adversarials, the (degrees, dx, dy) chosen per image) of the grid search on float [0, 1] NCHW ``x``."""
    y = labels.to(x.device).long()
    grid = transform_grid(max_rotation, max_translation, n_rotations)
    best, best_m = x.clone(), torch.full((len(x),), float("inf"), device=x.device)
    chosen = torch.zeros(len(x), 3, device=x.device)
    done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    with torch.no_grad():
        for t in grid:
            idx = (~done).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            cand = quantize(rotate_translate(x[idx], *t))
            m = _margin(model(cand).float(), y[idx])
            take = m < best_m[idx]
            best[idx[take]], best_m[idx[take]] = cand[take], m[take]
            chosen[idx[take]] = torch.tensor(t, dtype=chosen.dtype, device=x.device)
            done[idx[m < 0]] = True
    return best, chosen


def torch_spatial(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, max_rotation: float = 30.0,
                  max_translation: int = 3, n_rotations: int = 7) -> torch.Tensor:
    return spatial_search(model, x, labels, max_rotation, max_translation, n_rotations)[0]


@register_attack("spatial", doc="Rotation + translation grid search (non-Lp; batched torch): ±30° in 7 steps, "
                 "±3 px shifts; the smallest transform that fools the victim, else the worst-of-k.")
def _spatial(victim_net: Net, eps: float | None = None, max_rotation: float = 30.0, max_translation: int = 3,
             n_rotations: int = 7) -> Attack:
    params = {"max_rotation": max_rotation, "max_translation": max_translation, "n_rotations": n_rotations}
    return _torch_attack("spatial", victim_net, torch_spatial, params, norm="spatial", family="spatial")
