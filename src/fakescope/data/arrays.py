"""Image arrays: the one validator (``images_from_array``) and the one ``.npz`` reader (``read_npz``)."""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .images import RESAMPLE
from .imageset import DataError

CHANNELS = (1, 3, 4)  # grey, RGB, RGBA: the channel-axis sizes fakescope recognises


def _as_numpy(arr: object) -> np.ndarray:
    """A numpy view of ``arr``; torch tensors (any device, with or without grad) are detached and copied to CPU."""
    if hasattr(arr, "detach") and hasattr(arr, "cpu"):  # a torch.Tensor, without importing torch here
        t = arr.detach().cpu()  # type: ignore[union-attr]
        return (t.float() if t.is_floating_point() and t.element_size() < 4 else t).numpy()  # bf16 has no numpy
    return np.asarray(arr)


def _to_nhwc(a: np.ndarray, name: str) -> np.ndarray:
    """The layout convention: NHWC when the last axis is 1/3/4, else NCHW when axis 1 is; 3-D is one image."""
    if a.ndim == 3:
        last, first = a.shape[-1] in CHANNELS, a.shape[0] in CHANNELS
        if last and first:
            raise DataError(f"{name}: shape {a.shape} is ambiguous (one HWC or one CHW image?); pass a 4-D "
                            "(N,H,W,C) batch")
        if not (last or first):
            raise DataError(f"{name}: a 3-D array must be one HWC or CHW image (channel axis of size 1, 3 or 4), "
                            f"got shape {a.shape}; pass a batch as (N,H,W,C)")
        a = a[None] if last else a[None].transpose(0, 2, 3, 1)
    if a.ndim != 4:
        raise DataError(f"{name}: images must be one (H,W,C) image or a 4-D (N,H,W,C) or (N,C,H,W) batch, "
                        f"got shape {a.shape}")
    if a.shape[-1] not in CHANNELS and a.shape[1] in CHANNELS:
        a = a.transpose(0, 2, 3, 1)
    if a.shape[-1] not in CHANNELS:
        raise DataError(f"{name}: cannot find the channel axis (size 1, 3 or 4) in shape {a.shape}")
    return a


def images_from_array(arr: object, name: str = "array") -> np.ndarray:
    """Validate images (numpy array or torch tensor, uint8 or float) and return uint8 NHWC RGB.

    Layout: a 4-D batch is NHWC when its last axis has size 1, 3 or 4, else NCHW when axis 1 has; a 3-D array is
    ONE image, HWC or CHW by the same rule (refused when both ends could be channels, e.g. (3, 8, 4)). Float arrays
    must be in [0, 1] (scaled by 255) or [0, 255]. Arrays whose maximum is at most 1/255 are refused: they are
    almost certainly [0, 1] images divided by 255 a second time.
    """
    a = _to_nhwc(_as_numpy(arr), name)
    if a.dtype == np.uint8:
        out = a
    elif np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer):
        f = a.astype(np.float64)
        if not np.isfinite(f).all():
            raise DataError(f"{name}: images contain NaN or infinite values")
        lo, hi = float(f.min(initial=0)), float(f.max(initial=0))
        if lo < 0:
            raise DataError(f"{name}: negative pixel values (min {lo:.3g}); pass raw images, not normalised ones")
        if 0 < hi <= 1.0 / 255.0 + 1e-9:
            raise DataError(f"{name}: pixel values are at most {hi:.3g}: these look like [0,1] images divided by "
                            "255 again; pass uint8 or [0,1] floats")
        if hi <= 1.0:
            f = f * 255.0
        elif hi > 255.0:
            raise DataError(f"{name}: pixel values up to {hi:.3g}; expected [0,1] floats or [0,255]")
        out = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    else:
        raise DataError(f"{name}: unsupported dtype {a.dtype}")
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    elif out.shape[-1] == 4:
        out = out[..., :3]
    return np.ascontiguousarray(out)


def is_array_file(path: str) -> bool:
    return path.lower().endswith(".npz")


@dataclass
class NpzArrays:
    """What an ``.npz`` holds for fakescope: validated uint8 NHWC ``images``, optional ``labels`` and ``groups``."""

    images: np.ndarray
    labels: np.ndarray | None
    groups: np.ndarray | None


def read_npz(path: str | os.PathLike[str]) -> NpzArrays:
    """The one ``.npz`` reader: ``images`` (validated by ``images_from_array``), optional int ``labels`` and ``groups``.

    Never unpickles (``allow_pickle=False``, and a file that is not a zip archive is refused before numpy sees it:
    ``np.load`` would take a ``.npy`` or a pickle). Raises ``DataError`` whose message does not repeat the path.
    """
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise DataError(f"not a readable .npz ({e})") from None
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise DataError("not a .npz (zip) archive; fakescope reads `images` from .npz files and never unpickles")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z.files:
                raise DataError(f"no 'images' array in the .npz (found {', '.join(z.files) or 'nothing'})")
            images = images_from_array(z["images"], "images")
            labels, groups = (z[k].astype(np.int64) if k in z.files else None for k in ("labels", "groups"))
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"not a readable .npz ({e})") from None
    return NpzArrays(images, labels, groups)


def read_npz_or_fail(path: str | os.PathLike[str]) -> NpzArrays:
    """``read_npz`` for training data: the error names the file."""
    try:
        return read_npz(path)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None


def read_images(path: str, size: int, resample: str = "bicubic") -> tuple[np.ndarray, int, int]:
    """(uint8 NHWC images of an ``.npz`` at ``size``, their stored width and height); ``DataError`` if unreadable."""
    images = read_npz(path).images
    h, w = images.shape[1:3]
    if (h, w) == (size, size):
        return images, w, h
    f = RESAMPLE.get(resample, RESAMPLE["bicubic"])
    out = np.stack([np.asarray(Image.fromarray(im).resize((size, size), f)) for im in images]) if len(images) \
        else np.zeros((0, size, size, 3), np.uint8)
    return out, w, h
