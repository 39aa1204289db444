"""Batched torch DeepFool and Carlini-Wagner L2: whole batches per step, registered as ``deepfool-fast``/``cw-l2-fast``.

ART's versions loop over classes (DeepFool) or run a per-sample line search (C&W) in numpy; these keep everything
on the torch side and drop finished images from the batch. ``model`` maps float [0, 1] NCHW to (N, C) logits
(see ``attacks.VictimLogits``) and must be in eval mode (batch statistics would couple the images).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..models.net import Net
from .attacks import Attack, VictimLogits, register_attack


def quantize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats → the nearest of the 256 grey levels (what saving as uint8 keeps)."""
    return torch.round(x * 255.0) / 255.0


def torch_deepfool(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None, max_iter: int = 50,
                   overshoot: float = 0.02, nb_candidates: int = 10, clip: tuple[float, float] = (0.0, 1.0),
                   quantized: bool = True) -> torch.Tensor:
    """Untargeted DeepFool (Moosavi-Dezfooli et al. 2016), L2, batched.

    Each step linearises the logits around the current point and moves to the nearest linearised boundary among
    the ``nb_candidates`` classes ranked highest on the clean image; the point tested is
    ``x + (1 + overshoot)·r_total`` (clipped and, with ``quantized``, rounded to grey levels, so success holds
    for the stored uint8 image). ``labels`` default to the predictions; images not classified as their label are
    returned unchanged.
    """
    x0 = x.detach()
    with torch.no_grad():
        z0 = model(x0)
    k0 = z0.argmax(1) if labels is None else labels.to(x0.device).long()
    m = min(nb_candidates, z0.shape[1])
    rank = z0.clone().scatter_(1, k0[:, None], float("inf"))
    cand = rank.topk(m, dim=1).indices  # column 0 is k0
    r_tot = torch.zeros_like(x0)
    x_adv = x0.clone()
    active = z0.argmax(1) == k0
    for step_i in range(max_iter + 1):  # the last pass only re-checks the predictions
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        xa = x_adv[idx].clone().requires_grad_(True)
        with torch.enable_grad():
            z = model(xa)
            still = z.argmax(1) == k0[idx]
            active[idx] = still
            if not still.any() or step_i == max_iter:
                break
            zc = z.gather(1, cand[idx])
            grads = [torch.autograd.grad(zc[:, j].sum(), xa, retain_graph=j < m - 1)[0] for j in range(m)]
        keep = still.nonzero().squeeze(1)
        g = torch.stack(grads, 1)[keep]
        w = (g[:, 1:] - g[:, :1]).flatten(2)  # (A, m-1, D)
        f = (zc[keep, 1:] - zc[keep, :1]).detach().abs()
        wn = w.norm(dim=2) + 1e-8
        best = (f / wn).argmin(1)
        ar = torch.arange(len(keep), device=x0.device)
        step = ((f[ar, best] + 1e-4) / wn[ar, best] ** 2)[:, None] * w[ar, best]
        j = idx[keep]
        r_tot[j] += step.view_as(x0[j])
        x_adv[j] = (x0[j] + (1 + overshoot) * r_tot[j]).clamp(*clip)
        if quantized:
            x_adv[j] = quantize(x_adv[j])
    return x_adv.detach()


def torch_cw_l2(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, confidence: float = 0.0,
                learning_rate: float = 0.05, binary_search_steps: int = 5, max_iter: int = 20,
                initial_const: float = 0.1, abort_early: bool = True, clip: tuple[float, float] = (0.0, 1.0),
                quantized: bool = True) -> torch.Tensor:
    """Untargeted Carlini-Wagner L2 (2017), batched: Adam in tanh space, per-image binary search on ``c``.

    Minimises ||x' - x||² + c·max(z_y - max_{i≠y} z_i + confidence, 0); returns, per image, the smallest-L2
    adversarial found, or the original where none was found. With ``quantized``, candidates are judged (and
    returned) rounded to grey levels, so success holds for the stored uint8 image.
    """
    lo, hi = clip
    x0 = x.detach()
    y = labels.to(x0.device).long()
    n = len(x0)
    onehot = torch.nn.functional.one_hot(y, model(x0[:1]).shape[1]).to(x0.dtype) if n else None
    w0 = torch.atanh(((x0 - lo) / (hi - lo) * 2 - 1) * 0.999999)
    c = torch.full((n,), float(initial_const), device=x0.device)
    c_lo = torch.zeros(n, device=x0.device)
    c_hi = torch.full((n,), 1e10, device=x0.device)
    best_l2 = torch.full((n,), float("inf"), device=x0.device)
    best = x0.clone()
    for _ in range(binary_search_steps if n else 0):
        delta = torch.zeros_like(w0, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=learning_rate)
        found = torch.zeros(n, dtype=torch.bool, device=x0.device)
        prev = float("inf")
        for it in range(max_iter):
            with torch.enable_grad():
                xa = (torch.tanh(w0 + delta) + 1) / 2 * (hi - lo) + lo
                z = model(xa)
                margin = (z * onehot).sum(1) - (z - 1e9 * onehot).amax(1) + confidence
                l2 = (xa - x0).flatten(1).pow(2).sum(1)
                loss = (l2 + c * margin.clamp(min=0)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
            with torch.no_grad():
                cand = quantize(xa) if quantized else xa
                if quantized:
                    zq = model(cand)
                    margin = (zq * onehot).sum(1) - (zq - 1e9 * onehot).amax(1) + confidence
                    l2 = (cand - x0).flatten(1).pow(2).sum(1)
                ok = margin <= 0
                better = ok & (l2 < best_l2)
                best_l2 = torch.where(better, l2, best_l2)
                best[better] = cand[better]
                found |= ok
            opt.step()
            if abort_early and it % max(1, max_iter // 10) == 0:
                if loss.item() > prev * 0.9999:
                    break
                prev = loss.item()
        c_hi = torch.where(found, torch.minimum(c_hi, c), c_hi)
        c_lo = torch.where(found, c_lo, torch.maximum(c_lo, c))
        c = torch.where(c_hi < 1e9, (c_lo + c_hi) / 2, c * 10)
    return best.detach()


def _torch_attack(name: str, victim_net: Net, fn: Any, params: dict[str, Any]) -> Attack:
    model = VictimLogits(victim_net.eval())
    device = next(victim_net.parameters()).device

    def generate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(np.asarray(y, np.int64)).to(device)
        return fn(model, xt, yt, **params).cpu().numpy()

    return Attack(name, "l2", None, params, generate)


@register_attack("deepfool-fast", doc="Batched torch DeepFool (minimum L2; 50 iterations, overshoot 0.02).")
def _deepfool_fast(victim_net: Net, eps: float | None = None, max_iter: int = 50, overshoot: float = 0.02,
                   nb_candidates: int = 10, quantized: bool = True) -> Attack:
    params = {"max_iter": max_iter, "overshoot": overshoot, "nb_candidates": nb_candidates, "quantized": quantized}
    return _torch_attack("deepfool-fast", victim_net, torch_deepfool, params)


@register_attack("cw-l2-fast", doc="Batched torch Carlini-Wagner L2 (5 binary-search steps x 20 Adam steps, lr 0.05).")
def _cw_l2_fast(victim_net: Net, eps: float | None = None, confidence: float = 0.0, learning_rate: float = 0.05,
                binary_search_steps: int = 5, max_iter: int = 20, initial_const: float = 0.1,
                quantized: bool = True) -> Attack:
    params = {"confidence": confidence, "learning_rate": learning_rate, "binary_search_steps": binary_search_steps,
              "max_iter": max_iter, "initial_const": initial_const, "quantized": quantized}
    return _torch_attack("cw-l2-fast", victim_net, torch_cw_l2, params)
