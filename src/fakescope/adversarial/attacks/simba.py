"""SimBA (Guo et al. 2019, "Simple Black-box Adversarial Attacks"), score-based, batched in torch, under L∞.

The attacker sees only the victim's output probabilities. Each iteration picks, per image, a new random
coordinate (one colour channel of one ``block`` x ``block`` square, never the same one twice) and tries
``+step`` there, then ``-step``; a change is kept when it lowers the probability of the true class. As every
coordinate moves at most once by ``step = floor(eps·255)/255`` from the original, the result stays on the grey-level
grid and within ``eps`` (L∞) with no projection: the budget is exact after saving as uint8. An image stops once it
is misclassified (two queries per iteration at most, one forward pass over the active images each).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...models.net import Net
from .base import LINF_EPS, Attack, register_attack
from .fast import _torch_attack


def _true_prob(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P(true class), predicted class) per image: what a score-based attacker may read."""
    with torch.no_grad():
        p = model(x).float().softmax(1)
    return p.gather(1, y[:, None]).squeeze(1), p.argmax(1)


def _block_delta(k: torch.Tensor, shape: tuple[int, ...], block: int, step: float) -> torch.Tensor:
    """(A, C, H, W): ``step`` on coordinate ``k[a]`` (channel-major index over ``block``-sized squares), else 0."""
    a, c, h, w = shape
    hb, wb = math.ceil(h / block), math.ceil(w / block)
    d = torch.zeros(a, c * hb * wb, dtype=torch.float32, device=k.device)
    d.scatter_(1, k[:, None], step)
    d = d.view(a, c, hb, wb).repeat_interleave(block, 2).repeat_interleave(block, 3)
    return d[:, :, :h, :w]


def torch_simba(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float = LINF_EPS,
                max_iter: int = 1000, block: int = 2, seed: int = 0) -> torch.Tensor:
    """Untargeted L∞ SimBA on float [0, 1] NCHW ``x`` (on the grey-level grid) with true ``labels``.

    ``max_iter`` iterations (≤ 2 queries each per image, capped at the number of coordinates); ``block``: the
    side of the squares a coordinate covers (1 = single pixels; 2 reaches lower frequencies sooner). Images the
    victim already gets wrong are returned unchanged.
    """
    x0 = x.detach().float()
    y = labels.to(x0.device).long()
    step = math.floor(eps * 255 + 1e-6) / 255
    n, c, h, w = x0.shape
    n_coords = c * math.ceil(h / block) * math.ceil(w / block)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    order = torch.argsort(torch.rand(n, n_coords, generator=gen), dim=1).to(x0.device)
    x_adv = x0.clone()
    p, pred = _true_prob(model, x_adv, y)
    active = pred == y
    for t in range(min(max_iter, n_coords)):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0 or step == 0:
            break
        delta = _block_delta(order[idx, t], (len(idx), c, h, w), block, step)
        pending = torch.ones(len(idx), dtype=torch.bool, device=x0.device)
        for sign in (1.0, -1.0):
            j = pending.nonzero().squeeze(1)
            if j.numel() == 0:
                break
            cand = (x_adv[idx[j]] + sign * delta[j]).clamp(0, 1)
            pc, predc = _true_prob(model, cand, y[idx[j]])
            better = pc < p[idx[j]]
            x_adv[idx[j[better]]], p[idx[j[better]]] = cand[better], pc[better]
            active[idx[j[better & (predc != y[idx[j]])]]] = False
            pending[j[better]] = False
    return x_adv


@register_attack("simba", doc="SimBA (L∞, score-based black-box, batched torch): up to 1000 iterations (≤ 2 queries "
                 "each), 2x2 blocks of ±eps, each moved at most once.")
def _simba(victim_net: Net, eps: float = LINF_EPS, max_iter: int = 1000, block: int = 2, seed: int = 0) -> Attack:
    params = {"eps": eps, "max_iter": max_iter, "block": block, "seed": seed}
    return _torch_attack("simba", victim_net, torch_simba, params, norm="linf", eps=eps, family="score-based")
