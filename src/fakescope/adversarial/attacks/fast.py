"""Shared machinery of the batched torch attacks: a frozen, fused attack copy of the victim, precision, rounding."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ...models.fuse import fuse_for_inference
from ...models.net import Net
from .base import Attack, VictimLogits

PRECISIONS = ("auto", "bf16", "fp32")


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


def _torch_attack(name: str, victim_net: Net, fn: Any, params: dict[str, Any], norm: str = "l2",
                  eps: float | None = None, family: str | None = None) -> Attack:
    """An ``Attack`` calling ``fn(model, x, labels, **params)`` on the victim's ``attack_model`` (on its device);
    a ``precision`` parameter becomes ``fn``'s ``grad_dtype``. Default: a minimum-norm L2 attack (``eps`` None);
    ``family`` as ``art._art``'s."""
    device = next(victim_net.parameters()).device
    model = VictimLogits(attack_model(victim_net.eval()))
    kw = {k: v for k, v in params.items() if k != "precision"}
    if "precision" in params:
        kw["grad_dtype"] = _grad_dtype(params["precision"])

    def generate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(np.asarray(y, np.int64)).to(device)
        return fn(model, xt, yt, **kw).cpu().numpy()

    return Attack(name, norm, eps, params, generate, family or ("gradient" if eps is not None else "minimum-norm"))
