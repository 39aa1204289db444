"""Decode one image file, whatever it is, into an RGB uint8 HWC array at the model's input size.

Conventions (documented in the README):
- any mode becomes RGB: 16-bit is scaled to 8-bit, transparency is composited onto white, CMYK/palette/
  grayscale are converted by Pillow; EXIF orientation is honoured; animations give their first frame;
- resizing to the model's square input uses Pillow's bicubic filter on the whole image (no crop);
- files over ``MAX_PIXELS`` pixels are refused from their header, before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

MAX_PIXELS = 50_000_000  # ~7000x7000; above this an image is refused before decoding (decompression bombs)
MAX_BYTES = 256 * 1024 * 1024
# Raster formats Pillow decodes in-process (multi-picture JPEGs, MPO, open through "JPEG"). Anything else
# (EPS, PDF... which Pillow would hand to Ghostscript) is refused as "unknown format", whatever the file is named.
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "DIB", "WEBP", "TIFF", "PPM", "TGA", "ICO")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif"}
RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


# formats whose EXIF block, when present, is always exposed as im.info["exif"] after load()
_EXIF_IN_INFO = {"JPEG", "PNG", "WEBP"}
# info keys from which Pillow's exif_transpose reads an orientation (ImageMagick's PNG text profile, XMP)
_ORIENTATION_KEYS = ("exif", "Raw profile type exif", "xmp", "XML:com.adobe.xmp")


class ImageError(ValueError):
    """A file could not be turned into an image; the message is meant for the user."""


@dataclass
class DecodeInfo:
    width: int
    height: int
    format: str
    warning: str | None = None


def decode_image(
    path: str | os.PathLike[str], size: int | None = 32, resample: str = "bicubic", ood_factor: float = 4.0
) -> tuple[np.ndarray, DecodeInfo]:
    """Return ``(HWC uint8 RGB array, info)``; raise ``ImageError`` with a clear reason on any failure."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as e:
        raise ImageError(f"cannot access file: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("not a regular file")
    if st.st_size == 0:
        raise ImageError("empty file (0 bytes)")
    if st.st_size > MAX_BYTES:
        raise ImageError(f"file too large ({st.st_size} bytes > {MAX_BYTES})")
    try:
        with open(p, "rb") as fh:  # read what stat promised (asking for MAX_BYTES would allocate that much)
            data = fh.read(st.st_size + 1)
            if len(data) > st.st_size:  # the file grew since stat: read on, up to the limit
                data += fh.read(MAX_BYTES + 1 - len(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we refuse bombs ourselves
            with Image.open(io.BytesIO(data), formats=FORMATS) as im:
                return _decode_open(im, size, resample, ood_factor)
    except ImageError:
        raise
    except PermissionError:
        raise ImageError("permission denied") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"refused: decompression bomb ({e})") from None
    except UnidentifiedImageError:  # Pillow's message would show the repr of an in-memory buffer
        raise ImageError("not a readable image: unknown or corrupt format") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types on hostile files; each becomes a per-file error
        raise ImageError(f"not a readable image: {type(e).__name__}: {e}") from None


def _decode_open(im: Image.Image, size: int | None, resample: str, ood_factor: float) -> tuple[np.ndarray, DecodeInfo]:
    w, h = im.size
    fmt = im.format or "unknown"
    if w < 1 or h < 1:
        raise ImageError(f"invalid dimensions {w}x{h}")
    if w * h > MAX_PIXELS:
        raise ImageError(f"refused before decoding: {w}x{h} = {w * h} pixels exceeds the {MAX_PIXELS} limit")
    if size is not None and fmt == "JPEG" and min(w, h) > size * 2:
        im.draft("RGB", (size * 2, size * 2))  # DCT-domain downscale of big JPEGs before decoding
    im.seek(0)
    im.load()
    if fmt not in _EXIF_IN_INFO or any(k in im.info for k in _ORIENTATION_KEYS):
        im = ImageOps.exif_transpose(im) or im
    arr = _to_rgb(im, fmt)
    info = DecodeInfo(width=w, height=h, format=fmt)
    if size is not None:
        if arr.shape[0] != size or arr.shape[1] != size:
            out = Image.fromarray(arr).resize((size, size), RESAMPLE[resample], reducing_gap=3.0)
            arr = np.asarray(out)
        big, small = max(w, h), min(w, h)
        if big > size * ood_factor or small * ood_factor < size or big > 3 * small:
            info.warning = (
                f"image is {w}x{h}; the model was trained on {size}x{size} images, so this verdict is "
                "extrapolated far outside its training data"
            )
    return np.ascontiguousarray(arr, dtype=np.uint8), info


def _to_rgb(im: Image.Image, fmt: str = "") -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        sixteen = mode.startswith("I;16") or fmt == "PPM"  # Pillow scales any PPM/PGM maxval > 255 to 0..65535
        a = a / 257.0 if sixteen or a.max(initial=0) > 255 else a
        g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
        a = a * 255.0 if a.max(initial=0) <= 1.0 else a
        g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode in ("P", "1", "L", "RGB") and "transparency" in im.info:  # palette or colour-key transparency
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(bg, im).convert("RGB"))
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)
