"""Shared plumbing for explainers: input conversion, target scores, and a context that restores model state.

Input convention: torch tensors are NCHW (or CHW) like ``Net``; numpy arrays are NHWC (or HWC) like ``Detector``
and ``ImageSet``. Either may be uint8 [0, 255] or floating point [0, 1].
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TypeAlias

import numpy as np
import torch
from torch import nn

ImagesLike: TypeAlias = "torch.Tensor | np.ndarray"
TargetLike: TypeAlias = "int | Sequence[int] | np.ndarray | torch.Tensor"


def model_device(net: nn.Module) -> torch.device:
    """The device of the first parameter or buffer (CPU for a module with neither)."""
    for t in net.parameters():
        return t.device
    for t in net.buffers():
        return t.device
    return torch.device("cpu")


def as_input(net: nn.Module, images: ImagesLike) -> torch.Tensor:
    """Images → a fresh float32 NCHW tensor in [0, 1] on the model's device (detached, no grad)."""
    if isinstance(images, np.ndarray):
        arr = images[None] if images.ndim == 3 else images
        if arr.ndim != 4:
            raise ValueError(f"numpy images must be HWC or NHWC, got shape {images.shape}")
        arr = np.ascontiguousarray(arr) if arr.flags.writeable else np.array(arr)  # torch wants writable memory
        x = torch.from_numpy(arr).permute(0, 3, 1, 2)
    elif isinstance(images, torch.Tensor):
        x = images[None] if images.dim() == 3 else images
        if x.dim() != 4:
            raise ValueError(f"tensor images must be CHW or NCHW, got shape {tuple(images.shape)}")
    else:
        raise TypeError(f"images must be a torch.Tensor or numpy array, not {type(images).__name__}")
    x = x.detach().to(model_device(net))
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise TypeError(f"images must be uint8 or floating point, not {x.dtype}")
    return x.float().clone()


def targets_for(target: TargetLike, n: int, device: torch.device) -> torch.Tensor:
    """One target index per image (an int is broadcast)."""
    t = torch.as_tensor(np.asarray(target), dtype=torch.long, device=device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"got {t.numel()} targets for {n} images")
    return t


def target_scores(net: nn.Module, x: torch.Tensor, target: TargetLike) -> torch.Tensor:
    """(N,) scores to explain: the label-1 logit (negated for target 0) for binary nets, else the class logit."""
    logits = getattr(net, "logits", None)
    out = logits(x) if callable(logits) else net(x)
    if out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    t = targets_for(target, x.shape[0], out.device)
    if out.dim() == 1:
        if not bool(((t == 0) | (t == 1)).all()):
            raise ValueError(f"binary models take target 0 or 1, got {t.tolist()}")
        return torch.where(t == 1, out, -out)
    if out.dim() != 2:
        raise ValueError(f"model output has shape {tuple(out.shape)}; expected (N,) or (N, C)")
    if bool(((t < 0) | (t >= out.shape[1])).any()):
        raise ValueError(f"target {t.tolist()} out of range for {out.shape[1]} classes")
    return out.gather(1, t[:, None])[:, 0]


@contextlib.contextmanager
def explaining(net: nn.Module) -> Iterator[None]:
    """Eval mode with gradients enabled; every module's train/eval flag is restored afterwards, whatever happens.

    Parameters are never modified: gradients are taken with ``torch.autograd.grad`` w.r.t. activations or inputs,
    so no ``.grad`` is accumulated and ``requires_grad`` flags stay as they were.
    """
    modes = [(m, m.training) for m in net.modules()]
    flags = [(p, p.requires_grad) for p in net.parameters()]
    try:
        net.eval()
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            if p.requires_grad != flag:
                p.requires_grad_(flag)


def normalise_maps(maps: torch.Tensor, percentile: float | None = None) -> np.ndarray:
    """(N, H, W) non-negative maps → float32 numpy in [0, 1] per image; all-zero (or non-finite) maps give zeros."""
    m = torch.nan_to_num(maps.detach().float(), nan=0.0, posinf=0.0, neginf=0.0).clamp_(min=0.0)
    flat = m.reshape(m.shape[0], -1)
    if percentile is not None and flat.shape[1] > 0:
        top = torch.quantile(flat, percentile / 100.0, dim=1)
        top = torch.where(top > 0, top, flat.amax(dim=1))
    else:
        top = flat.amax(dim=1) if flat.shape[1] > 0 else torch.zeros(m.shape[0], device=m.device)
    scale = torch.where(top > 0, 1.0 / top.clamp(min=1e-30), torch.zeros_like(top))
    out = (m * scale.view(-1, 1, 1)).clamp_(0.0, 1.0)
    return out.cpu().numpy().astype(np.float32, copy=False)
