"""Overlays and the ``explain`` command: one PNG per image (input + one heat-map overlay per method) + a JSON index."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..io import save_figure, write_json
from .attributions import EXPLAINERS, create_explainer
from .fonts import safe_title

if TYPE_CHECKING:
    from ..inference.contract import Scorer

DEFAULT_METHODS = ("gradcam", "integrated-gradients")
INDEX_NAME = "explanations.json"


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] heat map (resized bilinearly if needed) coloured with ``cmap`` onto a uint8 HWC image."""
    from matplotlib import colormaps

    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be uint8 HWC RGB, got {img.dtype} {img.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    h = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if h.ndim != 2:
        raise ValueError(f"heat map must be 2-D, got shape {h.shape}")
    if h.shape != img.shape[:2]:
        size = (img.shape[1], img.shape[0])
        h = np.asarray(Image.fromarray(np.ascontiguousarray(h)).resize(size, Image.Resampling.BILINEAR))
    colours = colormaps[cmap](np.clip(h, 0.0, 1.0))[..., :3] * 255.0
    out = (1.0 - alpha) * img.astype(np.float32) + alpha * colours
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _png_name(path: str, used: set[str]) -> str:
    stem = Path(path).stem or "image"
    name, k = f"{stem}.png", 1
    while name in used or name == INDEX_NAME:
        name, k = f"{stem}-{k}.png", k + 1
    used.add(name)
    return name


def _lines(text: str) -> tuple[str, list[str]]:
    """``safe_title`` line by line (line breaks are kept, other control characters escaped)."""
    done = [safe_title(line) for line in text.split("\n")]
    return "\n".join(t for t, _f in done), list(dict.fromkeys(f for _t, fams in done for f in fams))


def _render(image: np.ndarray, heats: dict[str, np.ndarray], verdict: str, detected: bool, title: str,
            png: Path, upscale: int) -> None:
    from matplotlib.figure import Figure

    big = np.repeat(np.repeat(image, upscale, axis=0), upscale, axis=1)  # nearest-neighbour upscaling
    panels = 1 + len(heats)
    if len(verdict) > 22 and " — " in verdict:  # "REAL — P(FAKE) ..." on two lines: the panel is narrow
        verdict = verdict.replace(" — ", "\n", 1)
    heading, families = _lines(title)
    extra = heading.count("\n") + verdict.count("\n")
    fig = Figure(figsize=(2.7 * panels, 3.2 + 0.17 * extra), dpi=100)
    axes = np.atleast_1d(fig.subplots(1, panels))
    axes[0].imshow(big, interpolation="nearest")
    text, fams = _lines(verdict)
    axes[0].set_title(text, color="#c0392b" if detected else "#1e8449", fontweight="bold", fontfamily=fams,
                      fontsize=10)
    for ax, (method, heat) in zip(axes[1:], heats.items(), strict=True):
        ax.imshow(overlay(big, heat), interpolation="nearest")
        ax.set_title(method if float(np.max(heat, initial=0.0)) > 0 else f"{method} (empty)")
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(heading, fontsize=8, fontfamily=families)
    fig.tight_layout()
    save_figure(fig, png)


def _digits(score: float, threshold: float) -> int:
    """Decimals enough that the printed score and threshold compare as the real ones do (3 at least)."""
    for d in range(3, 7):
        if (round(score, d) >= round(threshold, d)) == (score >= threshold):
            return d
    return 7


def verdict_text(classes: Sequence[str], label: str, score: float, threshold: float | None) -> str:
    """A verdict as a title: ``REAL — P(FAKE) 0.989, threshold 0.999`` (binary: the calibrated probability of
    label 1, whatever the verdict), or ``truck 0.998`` (class probabilities: the top one)."""
    if len(classes) != 2 or threshold is None:
        return f"{label} {score:.3f}"
    d = _digits(score, threshold)
    return f"{label} — P({classes[1]}) {score:.{d}f}, threshold {threshold:.{d}f}"


def verdict(det: Scorer, img: np.ndarray, threshold: float | None = None) -> tuple[str, int, float, float, bool]:
    """One uint8 HWC image → (label, class index, P(label 1) or P(label), confidence in the label, detected?)."""
    probs = det.scores(img[None])
    label = det.labels(probs, threshold)[0]
    idx = det.classes.index(label)
    if probs.ndim == 1:
        score = float(probs[0])
        confidence = score if idx == 1 else 1.0 - score
    else:
        score = confidence = float(probs[0, idx])
    return label, idx, score, confidence, bool(probs.ndim == 1 and idx == 1)


def explain(paths: Sequence[str | os.PathLike[str]], model: str | os.PathLike[str] = "fast", out: str = "explain",
            methods: Sequence[str] | None = None, upscale: int = 8) -> list[dict[str, Any]]:
    """Explain each image's verdict with every method; write ``out/<stem>.png`` and ``out/explanations.json``.

    Per-file failures (unreadable image...) are recorded in the ``error`` field and never stop the run. Returns
    one record per path: ``path, label, score`` (as ``scan``: P(label 1) for binary models, else the top class
    probability), ``confidence`` (probability of the predicted label), ``png``, ``warning``, ``error``.
    """
    from ..data import ImageError, decode_image
    from ..inference.scorer import Detector

    methods = list(DEFAULT_METHODS if methods is None else methods)
    if not methods:
        raise ValueError("no explanation methods given")
    explainers = {m: create_explainer(m) for m in methods}  # unknown names fail here, before any work
    if upscale < 1:
        raise ValueError(f"upscale must be >= 1, got {upscale}")
    det = Detector.load(model)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    results: list[dict[str, Any]] = []
    for p in paths:
        rec: dict[str, Any] = {"path": str(p), "label": None, "score": None, "confidence": None, "png": None,
                               "warning": None, "error": None}
        results.append(rec)
        try:
            img, info = decode_image(p, det.image_size, det.net.spec.resample)
            img = np.array(img)  # writable copy (Pillow's arrays are read-only)
            label, idx, score, confidence, detected = verdict(det, img)
            heats = {m: fn(det.net, img[None], idx)[0] for m, fn in explainers.items()}
            png = outdir / _png_name(str(p), used)
            t = det.threshold if probs_are_binary(det) else None
            _render(img, heats, verdict_text(det.classes, label, score, t), detected, Path(p).name, png, upscale)
            rec.update(label=label, score=round(score, 6), confidence=round(confidence, 6), png=str(png),
                       warning=info.warning)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the run; it is reported in its record
            rec["error"] = str(e) if isinstance(e, ImageError) else f"{type(e).__name__}: {e}"
    write_json(outdir / INDEX_NAME, results)
    return results


def probs_are_binary(det: Scorer) -> bool:
    """Whether ``det`` scores P(label 1) (binary detectors) rather than class probabilities."""
    return det.task != "classify" and len(det.classes) == 2  # detection tasks score label 1 (DESIGN.md)


__all__ = ["DEFAULT_METHODS", "EXPLAINERS", "explain", "overlay", "verdict", "verdict_text"]
