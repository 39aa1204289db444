"""Image degradations: deterministic numpy/Pillow perturbations for the robustness study, and ``augment_batch``,
their randomised torch counterpart for training.

``perturb`` works on uint8 NHWC arrays (the ``ImageSet`` format); ``augment_batch`` on uint8 NCHW tensors (the
training batch format), on any device.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# family -> levels, each list ordered from mild to severe
PERTURBATIONS: dict[str, tuple[float, ...]] = {
    "jpeg": (95, 90, 75, 50, 30),  # re-encoding quality
    "blur": (0.5, 1.0, 1.5),  # Gaussian sigma in pixels
    "downscale": (0.75, 0.5),  # shrink by this factor, then back to the original size (bicubic)
    "resample": (2.0,),  # enlarge by this factor, then back to the original size (bicubic)
    "noise": (2.0, 4.0, 8.0),  # Gaussian noise sigma on the 0..255 scale
}


LEVEL_NAMES = {"jpeg": "quality", "blur": "sigma", "downscale": "factor", "resample": "factor", "noise": "sigma"}


AUGMENT_OPS = ("jpeg", "blur", "noise", "rescale")


def _per_image(images: np.ndarray, fn: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    out = np.empty_like(images)
    for i, img in enumerate(images):
        out[i] = fn(Image.fromarray(img))
    return out


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode each image as a JPEG at ``quality`` (Pillow, 4:2:0 subsampling) and decode it again."""
    def one(im: Image.Image) -> np.ndarray:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(quality))
        with Image.open(io.BytesIO(buf.getvalue())) as back:
            return np.asarray(back.convert("RGB"))

    return _per_image(images, one)


def gaussian_kernel(sigma: float, radius: int | None = None) -> np.ndarray:
    """Normalised 1-D Gaussian weights over ``[-radius, radius]`` (default radius ``ceil(3 sigma)``)."""
    r = max(1, math.ceil(3 * sigma)) if radius is None else radius
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with reflected borders."""
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    x = images.astype(np.float64)
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        p = np.pad(x, pad, mode="reflect")
        n = x.shape[axis]
        x = sum(w * np.take(p, np.arange(j, j + n), axis=axis) for j, w in enumerate(k))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def rescale(images: np.ndarray, factor: float) -> np.ndarray:
    """Resize by ``factor`` (bicubic) and back to the original size (bicubic)."""
    h, w = images.shape[1:3]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    bic = Image.Resampling.BICUBIC
    return _per_image(images, lambda im: np.asarray(im.resize(size, bic).resize((w, h), bic)))


def noise(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Add Gaussian noise of std ``sigma`` (0..255 scale), rounded and clipped; seeded by ``(seed, sigma)``."""
    rng = np.random.default_rng((seed, round(sigma * 1000)))
    x = images.astype(np.float64) + rng.normal(0.0, sigma, images.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def perturb(images: np.ndarray, family: str, level: float, seed: int = 0) -> np.ndarray:
    """Apply one perturbation of ``PERTURBATIONS`` to uint8 NHWC ``images`` (deterministic for a given seed)."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"perturb: expected uint8 NHWC images, got {images.dtype} {images.shape}")
    if family == "jpeg":
        return jpeg(images, int(level))
    if family == "blur":
        return blur(images, float(level))
    if family in ("downscale", "resample"):
        return rescale(images, float(level))
    if family == "noise":
        return noise(images, float(level), seed)
    raise ValueError(f"unknown perturbation {family!r}; choose one of: {', '.join(PERTURBATIONS)}")


def _aug_jpeg(x: torch.Tensor, u: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    arr = x.permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([jpeg(a[None], int(30 + 65 * float(q)))[0] for a, q in zip(arr, u, strict=True)])
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device)


def _aug_blur(x: torch.Tensor, u: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n, c, h, w = x.shape
    r = min(4, (min(h, w) - 1) // 2)
    sigma = (0.3 + 1.2 * u).to(torch.float64).view(-1, 1)
    t = torch.arange(-r, r + 1, dtype=torch.float64).view(1, -1)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).float().to(x.device).repeat_interleave(c, dim=0)  # (n*c, 2r+1)
    y = x.float().reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(n * c, 1, -1, 1), groups=n * c)
    return y.reshape(n, c, h, w).round().clamp(0, 255).to(torch.uint8)


def _aug_noise(x: torch.Tensor, u: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    sigma = (1.0 + 7.0 * u).view(-1, 1, 1, 1)
    eps = torch.randn(tuple(x.shape), generator=gen) * sigma
    return (x.float() + eps.to(x.device)).round().clamp(0, 255).to(torch.uint8)


def _aug_fine_noise(x: torch.Tensor, u: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    sigma = (0.5 * 6.0 ** u).view(-1, 1, 1, 1)  # log-uniform 0.5..3 grey levels: the L2 of DeepFool, C&W, PGD-2
    eps = torch.randn(tuple(x.shape), generator=gen) * sigma
    return (x.float() + eps.to(x.device)).round().clamp(0, 255).to(torch.uint8)


def _aug_rescale(x: torch.Tensor, u: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    h, w = x.shape[2:]
    out = []
    for img, f in zip(x.float(), (0.5 + 0.45 * u).tolist(), strict=True):
        small = F.interpolate(img[None], size=(max(1, round(h * f)), max(1, round(w * f))), mode="bilinear",
                              antialias=True, align_corners=False)
        out.append(F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False))
    return torch.cat(out).round().clamp(0, 255).to(torch.uint8)


_AUGMENTERS = {"jpeg": _aug_jpeg, "blur": _aug_blur, "noise": _aug_noise, "rescale": _aug_rescale,
               "fine-noise": _aug_fine_noise}


def augment_batch(x: torch.Tensor, generator: torch.Generator, p: float = 0.5,
                  ops: tuple[str, ...] = AUGMENT_OPS) -> torch.Tensor:
    """Degrade each image of a uint8 NCHW batch with probability ``p`` by one random op from ``ops``.

    Ops and strengths: JPEG quality 30..95 (Pillow, on the CPU), Gaussian blur sigma 0.3..1.5, Gaussian noise
    sigma 1..8 grey levels, ``fine-noise`` (not in the default ops) sigma 0.5..3 log-uniform, rescale by
    0.5..0.95 and back. Randomness comes only from ``generator`` (a CPU generator), so a seeded generator gives
    the same batch on any device. Returns a new tensor on ``x``'s device.
    """
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"augment_batch: expected a uint8 NCHW tensor, got {x.dtype} {tuple(x.shape)}")
    unknown = set(ops) - set(_AUGMENTERS)
    if unknown or not ops:
        raise ValueError(f"augment_batch: unknown ops {sorted(unknown)}; choose from {', '.join(_AUGMENTERS)}")
    n = x.shape[0]
    apply = torch.rand(n, generator=generator) < p
    which = torch.randint(len(ops), (n,), generator=generator)
    strength = torch.rand(n, generator=generator)
    out = x.clone()
    for k, name in enumerate(ops):
        idx = torch.nonzero(apply & (which == k)).flatten()
        if idx.numel():
            dev_idx = idx.to(x.device)
            out[dev_idx] = _AUGMENTERS[name](x[dev_idx], strength[idx], generator)
    return out


AUGMENTS = ("none", "robust", "negatives")


NEGATIVE_OPS = ("jpeg", "blur", "noise", "rescale", "fine-noise")


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)


def random_translate(x: torch.Tensor, gen: torch.Generator, pixels: int) -> torch.Tensor:
    """Shift each image by up to ``pixels`` in x and y (reflect padding, as airbench does); same shape out."""
    n, _, h, w = x.shape
    shifts = torch.randint(0, 2 * pixels + 1, (n, 2), generator=gen)
    padded = F.pad(x, (pixels, pixels, pixels, pixels), mode="reflect")
    out = torch.empty_like(x)
    key = (shifts[:, 0] * (2 * pixels + 1) + shifts[:, 1]).to(x.device)
    for k in torch.unique(key).tolist():
        sel = (key == k).nonzero().squeeze(1)
        dy, dx = divmod(k, 2 * pixels + 1)
        out[sel] = padded[sel, :, dy:dy + h, dx:dx + w]
    return out


def degrade(x: torch.Tensor, gen: torch.Generator, y: torch.Tensor | None = None) -> torch.Tensor:
    """``--augment robust``: ``studies.perturb.augment_batch`` (half the images degraded), drawn from ``gen``.

    With ``y`` (``--augment negatives``) only label-0 images are degraded (60%, ``NEGATIVE_OPS``): an adversarial
    detector then sees JPEG-re-encoded, blurred, rescaled and noisy CLEAN images, including noise as faint as
    DeepFool's, so "any noise" stops being evidence of an attack.
    """

    if y is None:
        return augment_batch(x, gen)
    out = augment_batch(x, gen, p=0.6, ops=NEGATIVE_OPS)
    return torch.where((y == 0).view(-1, 1, 1, 1), out, x)
