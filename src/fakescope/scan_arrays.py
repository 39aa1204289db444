"""Reading ``.npz`` image arrays for a scan (the seed notebook's format: an ``images`` array, e.g. ``attacked.npz``).

Each image of the array gets its own row, keyed ``FILE.npz#INDEX`` (the convention of ``load_npz``). Arrays are
read with ``allow_pickle=False`` and validated like training data (uint8 or [0, 1] floats, NHWC or NCHW, images
divided by 255 twice refused); images of another size are resized with the model's resampling filter. A file that
cannot be read gets one row with its error, and the scan goes on.
"""

from __future__ import annotations

import zipfile
import zlib

import numpy as np
from PIL import Image

from .data.sources import images_from_array

_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
            "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


def is_array_file(path: str) -> bool:
    return path.lower().endswith(".npz")


def read_images(path: str, size: int, resample: str = "bicubic") -> tuple[np.ndarray, int, int]:
    """(uint8 NHWC images at ``size``, their stored width and height); raises ValueError if unreadable."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise ValueError(f"not a readable .npz ({e})") from None
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # np.load would take anything else for .npy or a pickle
        raise ValueError("not a .npz (zip) archive; fakescope reads `images` from .npz files and never unpickles")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z.files:
                raise ValueError(f"no 'images' array in the .npz (found {', '.join(z.files) or 'nothing'})")
            images = images_from_array(z["images"], "images")
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"not a readable .npz ({e})") from None
    h, w = images.shape[1:3]
    if (h, w) == (size, size):
        return images, w, h
    f = _FILTERS.get(resample, Image.Resampling.BICUBIC)
    out = np.stack([np.asarray(Image.fromarray(im).resize((size, size), f)) for im in images]) if len(images) \
        else np.zeros((0, size, size, 3), np.uint8)
    return out, w, h
