"""Decode one image file, whatever it is, into an RGB uint8 HWC array at the model's input size.

Conventions (documented in the README):
- any mode becomes RGB: 16-bit is scaled to 8-bit, transparency is composited onto white, CMYK/palette/
  grayscale are converted by Pillow; EXIF orientation is honoured; animations give their first frame;
- resizing to the model's square input uses Pillow's bicubic filter on the whole image (no crop);
- files over ``MAX_PIXELS`` pixels are refused from their header, before any pixel is decoded.
"""

from __future__ import annotations

import functools
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
# Raster formats Pillow decodes in-process (multi-picture JPEGs, MPO, open through "JPEG"), plus AVIF (Pillow's
# own plugin, when built with libavif) and HEIF/HEIC (the pillow-heif plugin, registered on the first HEIF file).
# Anything else (EPS, PDF... which Pillow would hand to Ghostscript) is refused, whatever the file is named:
# known formats as "format not supported", the rest as "unknown or corrupt format".
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "DIB", "WEBP", "TIFF", "PPM", "TGA", "ICO")
IMAGE_EXTS = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".webp", ".tif", ".tiff", ".ppm",
              ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".avif", ".heic", ".heif", ".hif"}
# image formats met in the wild that fakescope does not decode: extension -> name (folder scans count them)
UNSUPPORTED_EXTS = {".eps": "EPS", ".ps": "PostScript", ".pdf": "PDF", ".svg": "SVG", ".svgz": "SVG", ".psd": "PSD",
                    ".xcf": "XCF", ".jxl": "JPEG XL", ".jp2": "JPEG 2000", ".j2k": "JPEG 2000", ".jpx": "JPEG 2000",
                    ".ai": "Illustrator", ".emf": "EMF", ".wmf": "WMF", ".dng": "camera raw", ".cr2": "camera raw",
                    ".cr3": "camera raw", ".nef": "camera raw", ".arw": "camera raw", ".raf": "camera raw",
                    ".orf": "camera raw", ".rw2": "camera raw", ".icns": "ICNS", ".dds": "DDS", ".exr": "OpenEXR",
                    ".hdr": "Radiance HDR", ".qoi": "QOI", ".pcx": "PCX"}
# magic numbers of refused formats (checked only once Pillow has not identified the file)
_UNSUPPORTED_MAGIC = ((b"%!PS", "EPS/PostScript"), (b"\xc5\xd0\xd3\xc6", "EPS"), (b"%PDF", "PDF"), (b"8BPS", "PSD"),
                      (b"gimp xcf", "XCF"), (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
                      (b"\xff\x4f\xff\x51", "JPEG 2000"), (b"\xff\x0a", "JPEG XL"),
                      (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"), (b"\xd7\xcd\xc6\x9a", "WMF"),
                      (b"icns", "ICNS"), (b"DDS ", "DDS"), (b"\x76\x2f\x31\x01", "OpenEXR"),
                      (b"#?RADIANCE", "Radiance HDR"), (b"qoif", "QOI"))
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
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
            with Image.open(io.BytesIO(data), formats=formats_for(data[:16])) as im:
                return _decode_open(im, size, resample, ood_factor)
    except ImageError:
        raise
    except PermissionError:
        raise ImageError("permission denied") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"refused: decompression bomb ({e})") from None
    except UnidentifiedImageError:  # Pillow's message would show the repr of an in-memory buffer
        raise ImageError(_unidentified(data)) from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types on hostile files; each becomes a per-file error
        raise ImageError(f"not a readable image: {type(e).__name__}: {e}") from None


def formats_for(head: bytes) -> tuple[str, ...]:
    """The Pillow formats tried on a file starting with ``head``: ``FORMATS``, and AVIF/HEIF for an ISO-BMFF
    (``ftyp``) file when a plugin decodes them. pillow-heif is imported here, on the first HEIF file only."""
    if head[4:8] != b"ftyp":
        return FORMATS
    brand = head[8:12]
    extra = (("AVIF",) if avif_supported() else ()) + (("HEIF",) if brand in _HEIF_BRANDS and heif_supported() else ())
    return FORMATS + extra


@functools.cache
def avif_supported() -> bool:
    """Pillow's own AVIF plugin (Pillow >= 11.3 built with libavif), else the ``pillow-avif-plugin`` package."""
    from PIL import features

    if features.check("avif"):
        return True
    try:
        import pillow_avif  # noqa: F401 - registers "AVIF" with Pillow
    except ImportError:
        return False
    return "AVIF" in Image.OPEN


@functools.cache
def heif_supported() -> bool:
    """HEIF/HEIC through ``pillow-heif`` (registered with Pillow on first use)."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return "HEIF" in Image.OPEN


def _unidentified(data: bytes) -> str:
    """Why Pillow could not open ``data``: a known format fakescope does not decode, or an unknown/corrupt one."""
    head = data[:64]
    name = next((n for magic, n in _UNSUPPORTED_MAGIC if head.startswith(magic)), None)
    if name is None and head[4:8] == b"ftyp":
        brand = head[8:12]
        name = ("AVIF" if brand in _AVIF_BRANDS else "HEIF/HEIC" if brand in _HEIF_BRANDS else None)
        if name and not (avif_supported() if name == "AVIF" else heif_supported()):
            plugin = "a Pillow built with libavif" if name == "AVIF" else "pip install pillow-heif"
            return f"format not supported: {name} (needs {plugin})"
        if name:
            return f"not a readable image: corrupt {name} file"
    if name is None and (b"<svg" in data[:1024] or head.lstrip().startswith(b"<?xml")):
        name = "SVG"
    if name is not None:
        return (f"format not supported: {name} (fakescope decodes JPEG, PNG, GIF, BMP, WebP, TIFF, PPM/PGM, TGA, ICO, "
                "AVIF and HEIC)")
    return "not a readable image: unknown or corrupt format"


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
