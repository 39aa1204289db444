"""Carlini-Wagner L2: ART's, and a batched torch version (``cw-l2-fast``)."""

from __future__ import annotations

import torch
from torch import nn

from ...models.net import Net
from .art import _art
from .base import Attack, register_attack
from .fast import ROUNDING_TOL, _autocast, _torch_attack, quantize, resolve_precision


@register_attack("cw-l2", doc="ART Carlini-Wagner L2 (5 binary-search steps x 10 line-search iterations). Slow.")
def _cw_l2(victim_net: Net, eps: float | None = None, confidence: float = 0.0, learning_rate: float = 0.01,
           binary_search_steps: int = 5, max_iter: int = 10, initial_const: float = 0.1) -> Attack:
    params = {"confidence": confidence, "learning_rate": learning_rate, "binary_search_steps": binary_search_steps,
              "max_iter": max_iter, "initial_const": initial_const}
    return _art("cw-l2", "l2", None, victim_net, "CarliniL2Method", params)


BF16_MARGIN_TOL = 0.05  # bf16 logit margins are confirmed in fp32 when within this fraction of max |logit| of 0


def _margin(z: torch.Tensor, y: torch.Tensor, confidence: float = 0.0) -> torch.Tensor:
    """z_y - max_{i≠y} z_i + confidence (≤ 0: adversarial)."""
    other = z.scatter(1, y[:, None], float("-inf")).amax(1)
    return z.gather(1, y[:, None]).squeeze(1) - other + confidence


def _fooled(z: torch.Tensor, y: torch.Tensor, confidence: float = 0.0) -> torch.Tensor:
    """Adversarial with room to spare for float rounding: margin ≤ -``ROUNDING_TOL``·max|z|."""
    return _margin(z, y, confidence) <= -ROUNDING_TOL * z.abs().amax(1)


def _cw_forward(model: nn.Module, xq: torch.Tensor, y: torch.Tensor, confidence: float,
                grad_dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, margins and d margin / d input at ``xq`` (one forward, one backward)."""
    xin = xq.detach().requires_grad_(True)
    with torch.enable_grad():
        with _autocast(xq, grad_dtype):
            z = model(xin).float()
        margin = _margin(z, y, confidence)
        (g,) = torch.autograd.grad(margin.sum(), xin)
    return z.detach(), margin.detach(), g.float()


def _verdict(model: nn.Module, xq: torch.Tensor, smaller: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
             margin: torch.Tensor, confidence: float,
             grad_dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(adversarial, verified) per candidate ``xq``. Low-precision margins within ``BF16_MARGIN_TOL``·max|z| of 0
    are settled by a float32 pass where the candidate could become its image's best (``smaller``); those
    clearly below are accepted unverified (``torch_cw_l2`` re-checks the final ones)."""
    scale = z.abs().amax(1)
    ok = margin <= -ROUNDING_TOL * scale
    if grad_dtype is None:
        return ok, torch.ones_like(ok)
    need = smaller & (margin.abs() <= BF16_MARGIN_TOL * scale)
    if need.any():
        with torch.no_grad():
            ok[need] = _fooled(model(xq[need]).float(), y[need], confidence)
    return ok, need


def _cw_eval(model: nn.Module, xq: torch.Tensor, y: torch.Tensor, smaller: torch.Tensor, confidence: float,
             grad_dtype: torch.dtype | None, memo: tuple[torch.Tensor, ...] | None) -> tuple[torch.Tensor, ...]:
    """(xq, margin, d margin/d xq, adversarial, verified) at candidates ``xq``; rows equal to ``memo``'s
    candidates reuse its results (C&W's first two iterates hardly depend on ``c``: Adam's first step is
    lr·sign(gradient))."""
    fresh = torch.ones(len(xq), dtype=torch.bool, device=xq.device) if memo is None \
        else (xq != memo[0]).flatten(1).any(1)
    if memo is not None and not fresh.any():
        return memo
    xf = xq[fresh]
    z, margin, g = _cw_forward(model, xf, y[fresh], confidence, grad_dtype)
    ok, verified = _verdict(model, xf, smaller[fresh], y[fresh], z, margin, confidence, grad_dtype)
    if memo is None:
        return xq, margin, g, ok, verified
    out = [xq, *(t.clone() for t in memo[1:])]
    for t, v in zip(out[1:], (margin, g, ok, verified), strict=True):
        t[fresh] = v
    return tuple(out)


def torch_cw_l2(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, confidence: float = 0.0,
                learning_rate: float = 0.05, binary_search_steps: int = 5, max_iter: int = 20,
                initial_const: float = 0.1, abort_early: bool = True, clip: tuple[float, float] = (0.0, 1.0),
                quantized: bool = True, grad_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Untargeted Carlini-Wagner L2 (2017), batched: Adam in tanh space, per-image binary search on ``c``.

    Minimises ||x' - x||² + c·max(z_y - max_{i≠y} z_i + confidence, 0); returns, per image, the smallest-L2
    adversarial found, or the original where none was found. With ``quantized``, the logit term is evaluated at
    the candidate rounded to grey levels (straight-through gradient), and candidates are judged (and returned)
    rounded, so success holds for the stored uint8 image. ``abort_early`` stops an image's Adam run, within a
    binary-search step, when its loss has not dropped by 0.01% over the last ``max_iter // 10`` iterations
    (per image, as ART does; the whole batch is no longer held to its slowest image). The first two iterates
    of a step, when they round to the same candidates as in an earlier step, reuse that step's pass. With
    ``grad_dtype`` (e.g. ``torch.bfloat16``) the optimisation runs under autocast; bf16 margins within
    ``BF16_MARGIN_TOL``·max|z| of 0 are settled by a float32 pass, and every returned adversarial is verified in
    float32 (falling back to the image's last float32-confirmed best, which never happened in testing).
    """
    lo, hi = clip
    x0 = x.detach()
    dev = x0.device
    y = labels.to(dev).long()
    n = len(x0)
    w0 = torch.atanh(((x0 - lo) / (hi - lo) * 2 - 1) * 0.999999)
    c = torch.full((n,), float(initial_const), device=dev)
    c_lo = torch.zeros(n, device=dev)
    c_hi = torch.full((n,), 1e10, device=dev)
    best_l2 = torch.full((n,), float("inf"), device=dev)
    best = x0.clone()
    safe = x0.clone()  # best float32-verified adversarial: the fallback should a bf16-accepted best fail
    unverified = torch.zeros(n, dtype=torch.bool, device=dev)
    every = max(1, max_iter // 10)
    memo: dict[int, tuple[torch.Tensor, ...]] = {}  # iterates 0 and 1 (all images still active there)
    for _ in range(binary_search_steps if n else 0):
        found = torch.zeros(n, dtype=torch.bool, device=dev)
        idx = torch.arange(n, device=dev)
        delta, m1, m2 = torch.zeros_like(w0), torch.zeros_like(w0), torch.zeros_like(w0)
        prev = torch.full((n,), float("inf"), device=dev)
        for it in range(max_iter):
            t = torch.tanh(w0[idx] + delta)
            xa = (t + 1) / 2 * (hi - lo) + lo
            xq = quantize(xa) if quantized else xa
            xo = x0[idx]
            l2q = (xq - xo).flatten(1).pow(2).sum(1)
            whole = it < 2 and len(idx) == n
            res = _cw_eval(model, xq, y[idx], l2q < best_l2[idx], confidence, grad_dtype,
                           memo.get(it) if whole else None)
            if whole:
                memo[it] = res
            _, margin, g_x, ok, verified = res
            better = ok & (l2q < best_l2[idx])
            best_l2[idx[better]] = l2q[better]
            best[idx[better]] = xq[better]
            unverified[idx[better]] = ~verified[better]
            sure = better & verified
            safe[idx[sure]] = xq[sure]
            found[idx[ok]] = True
            cs = c[idx]
            diff = xa - xo
            loss = diff.flatten(1).pow(2).sum(1) + cs * margin.clamp(min=0)
            g = (2 * diff + (cs * (margin > 0))[:, None, None, None] * g_x) * (1 - t * t) * ((hi - lo) / 2)
            _adam_step(delta, m1, m2, g, it, learning_rate)
            if abort_early and it % every == 0:
                keep = loss <= prev * 0.9999
                if not keep.all():
                    idx, delta, m1, m2 = idx[keep], delta[keep], m1[keep], m2[keep]
                    if idx.numel() == 0:
                        break
                prev = loss[keep]
        c_hi = torch.where(found, torch.minimum(c_hi, c), c_hi)
        c_lo = torch.where(found, c_lo, torch.maximum(c_lo, c))
        c = torch.where(c_hi < 1e9, (c_lo + c_hi) / 2, c * 10)
    return _confirmed(model, best, safe, unverified, y, confidence)


def _adam_step(delta: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor, g: torch.Tensor, it: int, lr: float,
               b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
    """One bias-corrected Adam step on ``delta`` (in place, as are the moments ``m1``, ``m2``); ``it`` from 0."""
    m1.mul_(b1).add_(g, alpha=1 - b1)
    m2.mul_(b2).addcmul_(g, g, value=1 - b2)
    denom = (m2 / (1 - b2 ** (it + 1))).sqrt_().add_(eps)
    delta.addcdiv_(m1, denom, value=-lr / (1 - b1 ** (it + 1)))


def _confirmed(model: nn.Module, best: torch.Tensor, safe: torch.Tensor, unverified: torch.Tensor,
               y: torch.Tensor, confidence: float) -> torch.Tensor:
    """``best``, with each ``unverified`` candidate that a float32 pass does not confirm replaced by ``safe``."""
    j = unverified.nonzero().squeeze(1)
    if j.numel():
        with torch.no_grad():
            bad = j[~_fooled(model(best[j]).float(), y[j], confidence)]
        best[bad] = safe[bad]
    return best.detach()


@register_attack("cw-l2-fast", doc="Batched torch Carlini-Wagner L2 (5 binary-search steps x 20 Adam steps, lr 0.05, "
                 "per-image early abort; bf16 gradients where the CPU has them).")
def _cw_l2_fast(victim_net: Net, eps: float | None = None, confidence: float = 0.0, learning_rate: float = 0.05,
                binary_search_steps: int = 5, max_iter: int = 20, initial_const: float = 0.1,
                quantized: bool = True, precision: str = "auto") -> Attack:
    precision = resolve_precision(precision, next(victim_net.parameters()).device)
    params = {"confidence": confidence, "learning_rate": learning_rate, "binary_search_steps": binary_search_steps,
              "max_iter": max_iter, "initial_const": initial_const, "quantized": quantized, "precision": precision}
    return _torch_attack("cw-l2-fast", victim_net, torch_cw_l2, params)
