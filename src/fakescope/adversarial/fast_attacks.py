"""Batched torch DeepFool and Carlini-Wagner L2: whole batches per step, registered as ``deepfool-fast``/``cw-l2-fast``.

ART's versions loop over classes (DeepFool) or run a per-sample line search (C&W) in numpy; these keep everything
on the torch side and drop finished images from the batch. ``model`` maps float [0, 1] NCHW to (N, C) logits
(see ``attacks.VictimLogits``) and must be in eval mode (batch statistics would couple the images).

Speed (the registered attacks): the victim is attacked through ``attack_model`` (BatchNorm folded into the convs,
weights frozen, GELU derivatives reused across backward passes: the same function and gradients up to float
rounding), and with ``precision="bf16"`` the gradient passes run under bfloat16 autocast while every success
verdict (which images count as adversarial, which candidate is kept) is still taken from a float32 forward pass.
``precision="auto"`` picks bf16 on CPUs with native bfloat16 (AVX512-BF16 / AMX) and fp32 elsewhere; the
resolved value is what the manifest records. An image counts as adversarial only when another class beats its
label by ``ROUNDING_TOL``·max|logit| (float noise between the folded and the original victim is ~1e-6).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ..models.fuse import fuse_for_inference
from ..models.net import Net
from .attacks import Attack, VictimLogits, register_attack

PRECISIONS = ("auto", "bf16", "fp32")
BF16_MARGIN_TOL = 0.05  # bf16 logit margins are confirmed in fp32 when within this fraction of max |logit| of 0
# An image counts as adversarial only when beaten by this fraction of its largest |logit|, so that float rounding
# elsewhere (the unfused victim, another batch size) reaches the same verdict on the stored image.
ROUNDING_TOL = 1e-4


def quantize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats → the nearest of the 256 grey levels (what saving as uint8 keeps)."""
    return torch.round(x * 255.0) / 255.0


class _GeluFn(torch.autograd.Function):
    """GELU whose derivative, once a second backward pass needs it, is kept and reused (DeepFool runs one backward
    per candidate class through the same graph; plain GELU recomputes erf and exp each time)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, approximate: str) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.approximate, ctx.calls, ctx.deriv = approximate, 0, None
        return F.gelu(x, approximate=approximate)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        ctx.calls += 1
        if ctx.calls == 1:
            return torch.ops.aten.gelu_backward(g, x, approximate=ctx.approximate), None
        if ctx.deriv is None:
            ctx.deriv = torch.ops.aten.gelu_backward(torch.ones_like(x), x, approximate=ctx.approximate)
        return g * ctx.deriv, None


class _ReusedGelu(nn.Module):
    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _GeluFn.apply(x, self.approximate)
        return F.gelu(x, approximate=self.approximate)


def attack_model(victim_net: Net) -> Net:
    """A frozen eval-mode copy of ``victim_net`` for attacking: BatchNorm folded into the preceding layers and
    GELUs that reuse their derivative. Same logits and input gradients up to float rounding; a snapshot, so
    later changes to ``victim_net``'s weights do not reach it."""
    net = fuse_for_inference(victim_net)
    for p in net.parameters():
        p.requires_grad_(False)
    for mod in list(net.modules()):
        for name, child in mod.named_children():
            if isinstance(child, nn.GELU):
                setattr(mod, name, _ReusedGelu(child.approximate))
    return net


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` is a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX)."""
    if device.type != "cpu":
        return False
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(f()) for f in checks if f is not None)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` where ``bf16_native(device)``, else ``fp32``; ``bf16``/``fp32`` pass through."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    return precision


def _grad_dtype(precision: str) -> torch.dtype | None:
    return torch.bfloat16 if precision == "bf16" else None


def _autocast(x: torch.Tensor, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext() if dtype is None else torch.autocast(x.device.type, dtype=dtype)


def _boundary_normals(model: nn.Module, x: torch.Tensor, cand: torch.Tensor,
                      grad_dtype: torch.dtype | None) -> torch.Tensor:
    """(N, m-1, D): gradients of z_cand[j] - z_cand[0] (j ≥ 1): one forward, m-1 backward passes."""
    xa = x.clone().requires_grad_(True)
    with torch.enable_grad():
        with _autocast(x, grad_dtype):
            zc = model(xa).gather(1, cand).float()
        d = zc[:, 1:] - zc[:, :1]
        k = d.shape[1]
        grads = [torch.autograd.grad(d[:, i].sum(), xa, retain_graph=i < k - 1)[0] for i in range(k)]
    return torch.stack(grads, 1).flatten(2).float()


def torch_deepfool(model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None, max_iter: int = 50,
                   overshoot: float = 0.02, nb_candidates: int = 4, clip: tuple[float, float] = (0.0, 1.0),
                   quantized: bool = True, grad_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Untargeted DeepFool (Moosavi-Dezfooli et al. 2016), L2, batched.

    Each step linearises the logits around the current point and moves to the nearest linearised boundary among
    the ``nb_candidates`` classes ranked highest on the clean image (the label's included; ART's ``nb_grads``).
    The default is 4 (it was 10, all CIFAR-10 classes: 9 backward passes per step instead of 3, for a ~2-3%
    lower mean L2 and the same success rate on the bundled victim). The point tested is
    ``x + (1 + overshoot)·r_total`` (clipped and, with ``quantized``, rounded to grey levels, so success holds for
    the stored uint8 image). ``labels`` default to the predictions; images not classified as their label are
    returned unchanged. Verdicts come from float32 forward passes;
    ``grad_dtype`` (e.g. ``torch.bfloat16``) only sets the autocast dtype of the gradient passes.
    """
    x0 = x.detach()
    with torch.no_grad():
        z0 = model(x0).float()
    k0 = z0.argmax(1) if labels is None else labels.to(x0.device).long()
    m = max(2, min(nb_candidates, z0.shape[1]))
    rank = z0.clone().scatter_(1, k0[:, None], float("inf"))
    cand = rank.topk(m, dim=1).indices  # column 0 is k0
    r_tot = torch.zeros_like(x0)
    x_adv = x0.clone()
    active = ~_fooled(z0, k0)
    for step_i in range(max_iter + 1):  # the last pass only re-checks the predictions
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        if step_i == 0:
            z = z0[idx]  # x_adv is still x0
        else:
            with torch.no_grad():
                z = model(x_adv[idx]).float()
        still = ~_fooled(z, k0[idx])
        active[idx] = still
        if step_i == max_iter or not still.any():
            break
        j = idx[still]
        zc = z[still].gather(1, cand[j])
        f = (zc[:, 1:] - zc[:, :1]).abs()  # (A, m-1) distances in logit units
        w = _boundary_normals(model, x_adv[j], cand[j], grad_dtype)
        wn = w.norm(dim=2) + 1e-8
        best = (f / wn).argmin(1)
        ar = torch.arange(len(j), device=x0.device)
        step = ((f[ar, best] + 1e-4) / wn[ar, best] ** 2)[:, None] * w[ar, best]
        r_tot[j] += step.view_as(x0[j])
        x_adv[j] = (x0[j] + (1 + overshoot) * r_tot[j]).clamp(*clip)
        if quantized:
            x_adv[j] = quantize(x_adv[j])
    return x_adv.detach()


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
    b1, b2, eps = 0.9, 0.999, 1e-8
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
            m1.mul_(b1).add_(g, alpha=1 - b1)
            m2.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (m2 / (1 - b2 ** (it + 1))).sqrt_().add_(eps)
            delta.addcdiv_(m1, denom, value=-learning_rate / (1 - b1 ** (it + 1)))
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
    j = unverified.nonzero().squeeze(1)
    if j.numel():
        with torch.no_grad():
            bad = j[~_fooled(model(best[j]).float(), y[j], confidence)]
        best[bad] = safe[bad]
    return best.detach()


def _torch_attack(name: str, victim_net: Net, fn: Any, params: dict[str, Any]) -> Attack:
    device = next(victim_net.parameters()).device
    model = VictimLogits(attack_model(victim_net.eval()))
    kw = {k: v for k, v in params.items() if k != "precision"}
    kw["grad_dtype"] = _grad_dtype(params["precision"])

    def generate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(np.asarray(y, np.int64)).to(device)
        return fn(model, xt, yt, **kw).cpu().numpy()

    return Attack(name, "l2", None, params, generate)


@register_attack("deepfool-fast", doc="Batched torch DeepFool (minimum L2; 50 iterations, overshoot 0.02, "
                 "4 candidate classes; bf16 gradients where the CPU has them).")
def _deepfool_fast(victim_net: Net, eps: float | None = None, max_iter: int = 50, overshoot: float = 0.02,
                   nb_candidates: int = 4, quantized: bool = True, precision: str = "auto") -> Attack:
    precision = resolve_precision(precision, next(victim_net.parameters()).device)
    params = {"max_iter": max_iter, "overshoot": overshoot, "nb_candidates": nb_candidates, "quantized": quantized,
              "precision": precision}
    return _torch_attack("deepfool-fast", victim_net, torch_deepfool, params)


@register_attack("cw-l2-fast", doc="Batched torch Carlini-Wagner L2 (5 binary-search steps x 20 Adam steps, lr 0.05, "
                 "per-image early abort; bf16 gradients where the CPU has them).")
def _cw_l2_fast(victim_net: Net, eps: float | None = None, confidence: float = 0.0, learning_rate: float = 0.05,
                binary_search_steps: int = 5, max_iter: int = 20, initial_const: float = 0.1,
                quantized: bool = True, precision: str = "auto") -> Attack:
    precision = resolve_precision(precision, next(victim_net.parameters()).device)
    params = {"confidence": confidence, "learning_rate": learning_rate, "binary_search_steps": binary_search_steps,
              "max_iter": max_iter, "initial_const": initial_const, "quantized": quantized, "precision": precision}
    return _torch_attack("cw-l2-fast", victim_net, torch_cw_l2, params)
