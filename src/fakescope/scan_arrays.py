"""Scanning ``.npz`` image arrays (the seed notebook's format: an ``images`` array, e.g. ``attacked.npz``).

Each image of the array gets its own row, keyed ``FILE.npz#INDEX`` (the convention of ``load_npz``). Arrays are
read with ``allow_pickle=False`` and validated like training data (uint8 or [0, 1] floats, NHWC or NCHW, images
divided by 255 twice refused); images of another size are resized with the model's resampling filter. A file that
cannot be read gets one row with its error, and the scan goes on.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .data.sources import images_from_array

if TYPE_CHECKING:
    from .detector import Detector
    from .scanning import Verdict

_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
            "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


def is_array_file(path: str) -> bool:
    return path.lower().endswith(".npz")


def read_images(path: str, size: int, resample: str = "bicubic") -> tuple[np.ndarray, str | None]:
    """(uint8 NHWC images at ``size``, a warning when they had to be resized); raises ValueError if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z.files:
                raise ValueError(f"no 'images' array in the .npz (found {', '.join(z.files) or 'nothing'})")
            images = images_from_array(z["images"], "images")
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"not a readable .npz ({e})") from None
    h, w = images.shape[1:3]
    if (h, w) == (size, size):
        return images, None
    f = _FILTERS.get(resample, Image.Resampling.BICUBIC)
    out = np.stack([np.asarray(Image.fromarray(im).resize((size, size), f)) for im in images]) if len(images) \
        else np.zeros((0, size, size, 3), np.uint8)
    return out, f"resized from {w}x{h} to {size}x{size}"


def array_rows(path: str, key: str, dets: list[Detector], threshold: float | None, skip: set[tuple[str, str]],
               bf16: bool, size: int, resample: str, chunk: int,
               make: Callable[..., Verdict]) -> Iterator[list[Verdict]]:
    """Rows for every image of one ``.npz`` (``make`` builds a ``Verdict``), chunk by chunk."""
    try:
        images, resized = read_images(path, size, resample)
    except ValueError as e:
        rows = [make(key, d.task, None, None, None, d.name, error=str(e)) for d in dets if (key, d.name) not in skip]
        if rows:
            yield rows
        return
    for start in range(0, len(images), chunk):
        batch = images[start:start + chunk]
        keys = [f"{key}#{i}" for i in range(start, start + len(batch))]
        scored = []
        for d in dets:
            s = d.scores(batch, bf16=bf16)
            note = resized and (resized + (": that erases most adversarial noise, so this verdict says little"
                                           if d.task == "adversarial" else ""))
            scored.append((d, (s if s.ndim == 1 else s.max(axis=1)).tolist(), d.labels(s, threshold),
                           d.threshold if threshold is None else threshold, note or None))
        rows: list[Verdict] = [make(k, d.task, labs[i], round(scores[i], 6), t, d.name, warning=note)
                               for i, k in enumerate(keys) for d, scores, labs, t, note in scored
                               if (k, d.name) not in skip]
        if rows:
            yield rows
