"""Perturbation and success figures of an attack, on the stored uint8 images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...inference.predict import predict_logits
from ...models.net import Net


def ssim(a: np.ndarray, b: np.ndarray, win: int = 11, sigma: float = 1.5, chunk: int = 512) -> np.ndarray:
    """Per-image SSIM (Wang et al. 2004) of uint8 NHWC images: Gaussian window, data range 1, channel-averaged.

    Computed on the valid region (no padding); the window shrinks to the image size for images under 11 px.
    """
    a, b = check_images(a, "a"), check_images(b, "b")
    win = min(win, a.shape[1], a.shape[2])
    win -= 1 - win % 2
    r = torch.arange(win, dtype=torch.float64) - (win - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).expand(3, 1, win, win)
    c1, c2 = 0.01**2, 0.03**2
    out = []
    for i in range(0, len(a), chunk):
        x = torch.from_numpy(a[i:i + chunk]).permute(0, 3, 1, 2).double() / 255.0
        y = torch.from_numpy(b[i:i + chunk]).permute(0, 3, 1, 2).double() / 255.0
        f = lambda t: F.conv2d(t, w, groups=3)  # noqa: E731
        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        out.append(m.mean(dim=(1, 2, 3)))
    return torch.cat(out).numpy() if out else np.zeros(0)


def perturbation_stats(originals: np.ndarray, adv: np.ndarray) -> dict[str, Any]:
    """L∞ / L2 ([0, 1] units), PSNR (dB, over changed images) and SSIM of uint8 ``adv`` against ``originals``."""
    o, a = check_images(originals, "originals"), check_images(adv, "adv")
    if o.shape != a.shape:
        raise ValueError(f"originals {o.shape} and adversarials {a.shape} differ in shape")
    d = (a.astype(np.float64) - o.astype(np.float64)).reshape(len(o), -1) / 255.0
    linf = np.abs(d).max(axis=1, initial=0.0)
    l2 = np.sqrt((d * d).sum(axis=1))
    mse = (d * d).mean(axis=1) if d.shape[1] else np.zeros(len(o))
    changed = mse > 0
    psnr = 10 * np.log10(1.0 / mse[changed])
    s = ssim(o, a)

    def agg(v: np.ndarray, fn: Callable[[np.ndarray], Any]) -> float | None:
        return float(fn(v)) if len(v) else None

    return {"linf_mean": agg(linf, np.mean), "linf_max": agg(linf, np.max), "l2_mean": agg(l2, np.mean),
            "l2_median": agg(l2, np.median), "l2_max": agg(l2, np.max), "psnr_db_mean": agg(psnr, np.mean),
            "ssim_mean": agg(s, np.mean), "n_unchanged": int((~changed).sum())}


def attack_stats(victim_net: Net, originals: np.ndarray, adv: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy and perturbation figures, computed on the STORED uint8 images (i.e. after rounding).

    ``success_rate`` counts only images the victim classified correctly before the attack.
    """
    labels = np.asarray(labels, np.int64)
    pc, pa = predict(victim_net, originals), predict(victim_net, adv)
    correct = pc == labels
    n = len(labels)
    return {"n": n, "n_correct": int(correct.sum()),
            "clean_accuracy": float(correct.mean()) if n else None,
            "adversarial_accuracy": float((pa == labels).mean()) if n else None,
            "success_rate": float((pa[correct] != labels[correct]).mean()) if correct.any() else None,
            **perturbation_stats(originals, adv)}


def predict(victim_net: Net, images: np.ndarray) -> np.ndarray:
    """Predicted class per uint8 NHWC image (binary nets: logit > 0)."""
    z = predict_logits(victim_net, images)
    return (z > 0).astype(np.int64) if z.ndim == 1 else z.argmax(1)


def check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    a = np.asarray(images)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"{name} must be uint8 NHWC RGB, got {a.dtype} {a.shape}")
    return a
