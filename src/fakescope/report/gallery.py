"""Galleries of an evaluation's most confident correct and wrong predictions, each with its Grad-CAM overlay."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from .html import array_png, esc, img, note

UPSCALE = 4  # nearest-neighbour enlargement of the 32x32 inputs before the heat map is blended in


def read_predictions(path: str | Path) -> list[dict[str, str]]:
    """Rows of ``predictions.csv`` (path, label, score, pred)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def confidence(row: dict[str, str], classes: list[str]) -> float:
    """Probability of the predicted class: ``score`` is P(label 1) for binary models, else the top-1 probability."""
    s = float(row["score"])
    if len(classes) == 2:
        return s if row["pred"] == classes[1] else 1.0 - s
    return s


def most_confident(rows: list[dict[str, str]], classes: list[str], k: int) -> tuple[list[dict[str, Any]],
                                                                                       list[dict[str, Any]]]:
    """The ``k`` most confident correct and the ``k`` most confident wrong predictions (ties by path)."""
    scored = []
    for r in rows:
        try:
            scored.append({**r, "confidence": confidence(r, classes)})
        except (KeyError, ValueError):
            continue
    scored.sort(key=lambda r: (-r["confidence"], r["path"]))
    right = [r for r in scored if r["label"] == r["pred"]][:k]
    wrong = [r for r in scored if r["label"] != r["pred"]][:k]
    return right, wrong


def _resolve_model(name: str, run_dir: Path) -> str:
    """``name`` as recorded by ``evaluate``; when that relative path no longer resolves (report built from another
    folder, run moved), try it under the evaluation folder, then its checkpoint file name beside/above it."""
    from ..models import list_bundled

    def found(p: Path) -> bool:
        return p.with_suffix(".json").is_file() or (p.is_dir() and (p / "model.json").is_file())

    if name in list_bundled() or found(Path(name)):
        return name
    for alt in (run_dir / name, run_dir / Path(name).name, run_dir.parent / Path(name).name):
        if found(alt):
            return str(alt)
    return name


def _cards(det: Any, rows: list[dict[str, Any]], run_dir: Path) -> tuple[str, int]:
    """HTML cards (input + Grad-CAM overlay) for ``rows``; returns the HTML and how many files were unreadable."""
    from ..data import ImageError, decode_image
    from ..explain import grad_cam, overlay

    images, kept, missing = [], [], 0
    for r in rows:
        p = Path(r["path"])
        if not p.exists() and (run_dir / p).exists():
            p = run_dir / p
        try:
            arr, _ = decode_image(p, det.image_size, det.net.spec.resample)
        except ImageError:
            missing += 1
            continue
        images.append(np.array(arr))
        kept.append(r)
    if not kept:
        return "", missing
    batch = np.stack(images)
    targets = [det.classes.index(r["pred"]) if r["pred"] in det.classes else 0 for r in kept]
    heats = grad_cam(det.net, batch, target=targets)
    out = []
    for image, heat, r in zip(batch, heats, kept, strict=True):
        big = np.repeat(np.repeat(image, UPSCALE, axis=0), UPSCALE, axis=1)
        ok = r["label"] == r["pred"]
        out.append(
            f'<div class="card">{img(array_png(big), "input")}{img(array_png(overlay(big, heat)), "Grad-CAM")}'
            f'<div class="{"ok" if ok else "bad"}">{esc(r["label"])} → {esc(r["pred"])} '
            f'({r["confidence"]:.3f})</div><div class="name">{esc(Path(r["path"]).name)}</div></div>')
    return '<div class="grid">' + "".join(out) + "</div>", missing


def gallery_html(run_dir: Path, metrics: dict[str, Any], k: int = 8) -> str:
    """Both galleries as HTML, or a note saying why they could not be drawn."""
    from ..inference.scorer import Detector
    from ..models import CheckpointError

    pred_file = run_dir / "predictions.csv"
    if not pred_file.exists():
        return ""
    classes = list(metrics.get("classes") or [])
    rows = read_predictions(pred_file)
    if not rows or len(classes) < 2:
        return note("predictions.csv is empty or metrics.json names no classes: no example galleries.")
    model = metrics.get("model")
    if not model:
        return note("metrics.json does not name the model: no Grad-CAM galleries.")
    resolved = _resolve_model(str(model), run_dir)
    try:
        det = Detector.load(resolved)
    except (CheckpointError, OSError, ValueError) as e:
        return note(f"cannot load model {model!r} for Grad-CAM ({e}): no example galleries.")
    right, wrong = most_confident(rows, classes, k)
    parts = ['<p class="muted">Each card: the input (enlarged) and its Grad-CAM heat map for the predicted class; '
             "caption: true → predicted (confidence of the prediction).</p>"]
    if resolved != str(model):
        parts.append(note(f"model {model!r} not found where evaluate ran; heat maps use {resolved}."))
    for title, chosen in ((f"Most confident correct predictions (top {k})", right),
                          (f"Most confident wrong predictions (top {k})", wrong)):
        parts.append(f"<h3>{esc(title)}</h3>")
        if not chosen:
            parts.append('<p class="muted">none</p>')
            continue
        cards, missing = _cards(det, chosen, run_dir)
        parts.append(cards)
        if missing:
            parts.append(note(f"{missing} image file(s) listed in predictions.csv could not be read (moved?)."))
    return "".join(parts)
