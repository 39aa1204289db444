"""A corpus of broken, hostile and unusual image files, generated on the fly (nothing binary is committed).

``make_corpus(root)`` writes every kind below into ``root`` and returns ``{file name: "ok" | "error"}``: what
``decode_image`` must do with each file. ``KINDS`` lists the kinds (a stable id, the file name, the expectation)
so tests can be parametrized before anything is written. File names are ``str``; a non-UTF-8 name is the
``os.fsdecode`` of its bytes (surrogate escapes), which ``open`` and ``os.stat`` accept as is.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from fakescope.data.images import MAX_BYTES

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0  # root reads chmod-000 files: that case then decodes
# Pillow hands EPS files to Ghostscript when it is installed: without it an EPS is an error, with it an image
HAS_GHOSTSCRIPT = shutil.which("gs") is not None

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


# ---------------------------------------------------------------- helpers


def png_chunk(tag: bytes, data: bytes, crc: int | None = None) -> bytes:
    """One PNG chunk; ``crc`` overrides the correct checksum (to write a corrupt one)."""
    c = zlib.crc32(tag + data) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", c)


def png_raw(w: int, h: int, depth: int, color: int, idat: bytes, extra: bytes = b"", ihdr_crc: int | None = None
            ) -> bytes:
    """A PNG built by hand: any IHDR (even absurd dimensions) followed by an already-compressed ``idat``."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr, ihdr_crc) + extra + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG from a uint16 (H, W) gray or (H, W, 3) RGB array."""
    h, w = arr.shape[:2]
    color = 0 if arr.ndim == 2 else 2
    rows = arr.astype(">u2").reshape(h, -1).view(np.uint8).reshape(h, -1)
    raw = b"".join(b"\x00" + r.tobytes() for r in rows)
    return png_raw(w, h, 16, color, zlib.compress(raw))


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    """An RGB image of smooth noise (compresses like a photo, so truncation hits real pixel data)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, h // 4), max(1, w // 4), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR)


def halves(w: int, h: int, left: tuple[int, ...], right: tuple[int, ...], mode: str = "RGB") -> Image.Image:
    """Left half ``left``, right half ``right``."""
    im = Image.new(mode, (w, h), left)
    im.paste(Image.new(mode, (w - w // 2, h), right), (w // 2, 0))
    return im


def exif_with(orientation: int | None = None, blob: int = 0) -> Image.Exif:
    ex = Image.Exif()
    if orientation is not None:
        ex[0x0112] = orientation
    if blob:
        ex[0x010E] = "x" * blob  # ImageDescription
    return ex


def jpeg_with_size(w: int, h: int) -> bytes:
    """A small valid JPEG whose SOF header is patched to claim ``w`` x ``h`` (a JPEG decompression bomb)."""
    data = bytearray(encode(Image.new("RGB", (16, 16), RED), "JPEG"))
    i = 2
    while i < len(data):
        marker, seglen = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5:i + 9] = struct.pack(">HH", h, w)
            return bytes(data)
        i += 2 + seglen
    raise AssertionError("no SOF marker")


def gif_bomb(w: int, h: int) -> bytes:
    """A valid 1x1 GIF whose logical screen is patched to ``w`` x ``h``."""
    data = bytearray(encode(Image.new("P", (1, 1)), "GIF"))
    data[6:10] = struct.pack("<HH", w, h)
    return bytes(data)


def png_raw_profile_exif(orientation: int) -> bytes:
    """Red-left/blue-right PNG whose orientation is only in ImageMagick's "Raw profile type exif" text chunk."""
    raw = exif_with(orientation).tobytes()
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", f"\nexif\n{len(raw):8d}\n{raw.hex()}\n", zip=True)
    return encode(halves(40, 20, RED, BLUE), "PNG", pnginfo=info)


def jpeg_xmp_orientation(orientation: int) -> bytes:
    """Red-left/blue-right JPEG whose orientation is only in its XMP packet (no EXIF block)."""
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           f'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="{orientation}"/>'
           '</rdf:RDF></x:xmpmeta>')
    return encode(halves(40, 20, RED, BLUE), "JPEG", quality=95, xmp=xmp.encode())


def gif_raw(w: int, h: int, body: bytes) -> bytes:
    """GIF89a header + logical screen of ``w`` x ``h`` without a colour table, then ``body``."""
    return b"GIF89a" + struct.pack("<HHBBB", w, h, 0, 0, 0) + body


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (24, 16), c) for c in (RED, GREEN, BLUE)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)


def tiff_float() -> bytes:
    return encode(Image.fromarray(np.full((12, 20), 0.5, np.float32), mode="F"), "TIFF")


def palette_trns() -> bytes:
    im = Image.new("P", (20, 12), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    im.paste(1, (10, 0, 20, 12))
    return encode(im, "PNG", transparency=0)  # index 0 (black) fully transparent, index 1 red opaque


def rgba_halves() -> bytes:
    return encode(halves(20, 12, (0, 0, 0, 0), (0, 0, 255, 255), "RGBA"), "PNG")


def pgm16(value: int) -> bytes:
    """A 16-bit binary PGM (maxval 65535) filled with ``value``."""
    w, h = 8, 6
    return b"P5\n%d %d\n65535\n" % (w, h) + np.full((h, w), value, ">u2").tobytes()


# ---------------------------------------------------------------- the kinds


@dataclass(frozen=True)
class Kind:
    """One corpus entry: ``write(path)`` creates ``name`` under the corpus root."""

    id: str
    name: str
    expected: str
    write: Callable[[Path], None]


def _bytes(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    def w(p: Path) -> None:
        p.write_bytes(data() if callable(data) else data)
    return w


def _symlink(target: str) -> Callable[[Path], None]:
    def w(p: Path) -> None:
        os.symlink(target, p)
    return w


def _mkdir(p: Path) -> None:
    p.mkdir()
    Image.new("RGB", (8, 8), GREEN).save(p / "inside.png")  # a good file inside a folder that looks like a file


def _noperm(p: Path) -> None:
    p.write_bytes(encode(noise(32, 32), "JPEG"))
    p.chmod(0)


def _fifo(p: Path) -> None:
    os.mkfifo(p)  # opening it for reading would block forever


def _sparse(p: Path) -> None:
    with open(p, "wb") as fh:
        fh.truncate(MAX_BYTES + 1)  # sparse: no disk used, but over the size limit


def _jpeg_trunc() -> bytes:
    d = encode(noise(64, 64), "JPEG", quality=90)
    return d[: len(d) * 6 // 10]


def _png_trunc() -> bytes:
    d = encode(noise(64, 64), "PNG")
    return d[: len(d) * 6 // 10]


def _png_eof_in_idat() -> bytes:
    d = encode(noise(64, 64), "PNG")
    return d[: d.index(b"IDAT") + 200]


KINDS: list[Kind] = [
    # empty, truncated, wrong content
    Kind("zero_bytes", "empty.jpg", "error", _bytes(b"")),
    Kind("truncated_jpeg", "truncated.jpg", "error", _bytes(_jpeg_trunc)),
    Kind("truncated_jpeg_header", "truncated_header.jpg", "error",
         _bytes(lambda: encode(noise(64, 64), "JPEG")[:120])),
    Kind("jpeg_soi_eoi_only", "soi_eoi.jpg", "error", _bytes(b"\xff\xd8\xff\xd9")),
    Kind("truncated_png", "truncated.png", "error", _bytes(_png_trunc)),
    Kind("png_eof_in_idat", "eof_in_idat.png", "error", _bytes(_png_eof_in_idat)),
    Kind("png_bad_crc", "bad_crc.png", "error",
         _bytes(lambda: png_raw(4, 4, 8, 0, zlib.compress(b"\x00\x80\x80\x80\x80" * 4), ihdr_crc=0xDEADBEEF))),
    Kind("png_zero_width", "zero_width.png", "error", _bytes(lambda: png_raw(0, 4, 8, 0, zlib.compress(b"")))),
    Kind("text_as_jpg", "text.jpg", "error", _bytes(b"this is not an image\n" * 20)),
    Kind("zeros_4k_png", "zeros.png", "error", _bytes(bytes(4096))),
    Kind("svg_as_png", "vector.png", "error",
         _bytes(b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                b'<rect width="10" height="10" fill="red"/></svg>\n')),
    Kind("eps_named_jpg", "postscript.jpg", "ok" if HAS_GHOSTSCRIPT else "error",
         _bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto 10 10 lineto stroke\nshowpage\n")),
    Kind("heic_junk", "photo.heic", "error",
         _bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(range(256)) * 8)),
    Kind("gif_no_frames", "noframes.gif", "error", _bytes(lambda: gif_raw(10, 10, b";"))),
    Kind("gif_garbage", "garbage.gif", "error",
         _bytes(lambda: gif_raw(10, 10, b",\x00\x00\x00\x00\x0a\x00\x0a\x00\x00\x08" + b"\xff" * 40))),
    # wrong extension (content wins)
    Kind("png_named_jpg", "png_inside.jpg", "ok", _bytes(lambda: encode(noise(40, 30), "PNG"))),
    Kind("jpeg_named_png", "jpeg_inside.png", "ok", _bytes(lambda: encode(noise(40, 30), "JPEG"))),
    # decompression bombs: tiny files, enormous headers
    Kind("bomb_png_30000", "bomb.png", "error",
         _bytes(lambda: png_raw(30000, 30000, 1, 0, zlib.compress(b"\x00" * 64)))),
    Kind("bomb_png_8000", "bomb_mid.png", "error",  # 64 Mpx: over MAX_PIXELS, under Pillow's own 2x hard limit
         _bytes(lambda: png_raw(8000, 8000, 1, 0, zlib.compress(b"\x00" * 64)))),
    Kind("bomb_jpeg_60000", "bomb.jpg", "error", _bytes(lambda: jpeg_with_size(60000, 60000))),
    Kind("bomb_gif_65535", "bomb.gif", "error", _bytes(lambda: gif_bomb(65535, 65535))),
    Kind("sparse_over_max_bytes", "sparse_huge.jpg", "error", _sparse),
    # odd but legal geometry
    Kind("wide_strip_20000x2", "strip.png", "ok", _bytes(lambda: encode(Image.new("RGB", (20000, 2), RED), "PNG"))),
    Kind("tall_strip_2x20000", "tall.png", "ok", _bytes(lambda: encode(Image.new("L", (2, 20000), 90), "PNG"))),
    Kind("one_pixel", "one.png", "ok", _bytes(lambda: encode(Image.new("RGB", (1, 1), BLUE), "PNG"))),
    Kind("big_4000x3000", "big.jpg", "ok", _bytes(lambda: encode(Image.new("RGB", (4000, 3000), (10, 20, 30)),
                                                                 "JPEG", quality=50))),
    # modes
    Kind("gray16_png", "gray16.png", "ok", _bytes(lambda: png16(np.full((10, 14), 32768, np.uint16)))),
    Kind("rgb16_png", "rgb16.png", "ok", _bytes(lambda: png16(np.full((10, 14, 3), 32768, np.uint16)))),
    Kind("gray16_tiff", "gray16.tif", "ok",
         _bytes(lambda: encode(Image.new("I;16", (14, 10), 32768), "TIFF"))),
    Kind("gray16_big_endian_tiff", "gray16be.tif", "ok",
         _bytes(lambda: encode(Image.new("I;16B", (14, 10), 32768), "TIFF"))),
    Kind("gray16_pgm", "gray16.pgm", "ok", _bytes(lambda: pgm16(32768))),
    Kind("gray16_pgm_dark", "dark16.pgm", "ok", _bytes(lambda: pgm16(200))),
    Kind("float_tiff", "float.tif", "ok", _bytes(tiff_float)),
    Kind("int32_tiff", "int32.tif", "ok",
         _bytes(lambda: encode(Image.fromarray(np.full((6, 8), -5, np.int32), mode="I"), "TIFF"))),
    Kind("cmyk_jpeg", "cmyk.jpg", "ok", _bytes(lambda: encode(Image.new("CMYK", (20, 12), (255, 0, 0, 0)), "JPEG"))),
    Kind("cmyk_tiff", "cmyk.tif", "ok", _bytes(lambda: encode(Image.new("CMYK", (20, 12), (0, 255, 0, 0)), "TIFF"))),
    Kind("palette_transparency", "palette_trns.png", "ok", _bytes(palette_trns)),
    Kind("rgba_transparency", "rgba.png", "ok", _bytes(rgba_halves)),
    Kind("la_transparency", "la.png", "ok", _bytes(lambda: encode(halves(20, 12, (0, 0), (0, 255), "LA"), "PNG"))),
    Kind("pa_tiff", "pa.tif", "ok", _bytes(lambda: encode(Image.new("PA", (8, 8)), "TIFF"))),
    Kind("rgba_webp", "rgba.webp", "ok",
         _bytes(lambda: encode(halves(20, 12, (0, 0, 0, 0), (0, 0, 255, 255), "RGBA"), "WEBP", lossless=True))),
    Kind("rgb_trns_png", "rgb_trns.png", "ok",  # colour-key transparency (tRNS), black transparent
         _bytes(lambda: encode(halves(20, 12, (0, 0, 0), (0, 0, 255)), "PNG", transparency=(0, 0, 0)))),
    Kind("gray_trns_png", "gray_trns.png", "ok",
         _bytes(lambda: encode(halves(20, 12, 0, 200, "L"), "PNG", transparency=0))),
    Kind("gray_jpeg", "gray.jpg", "ok", _bytes(lambda: encode(Image.new("L", (20, 12), 100), "JPEG"))),
    Kind("one_bit_png", "onebit.png", "ok", _bytes(lambda: encode(halves(20, 12, 0, 1, "1"), "PNG"))),
    Kind("one_bit_tiff", "onebit.tif", "ok",
         _bytes(lambda: encode(halves(20, 12, 0, 1, "1"), "TIFF", compression="group4"))),
    # orientation, animation, metadata
    Kind("exif_rotated_jpeg", "rot6.jpg", "ok",
         _bytes(lambda: encode(halves(40, 20, RED, BLUE), "JPEG", quality=95, exif=exif_with(6)))),
    Kind("exif_rotated_png", "rot6.png", "ok", _bytes(lambda: encode(halves(40, 20, RED, BLUE), "PNG",
                                                                     exif=exif_with(6)))),
    Kind("exif_rotated_webp", "rot6.webp", "ok",
         _bytes(lambda: encode(halves(40, 20, RED, BLUE), "WEBP", lossless=True, exif=exif_with(6)))),
    Kind("exif_rotated_tiff", "rot6.tif", "ok",
         _bytes(lambda: encode(halves(40, 20, RED, BLUE), "TIFF", exif=exif_with(6)))),
    Kind("exif_raw_profile_png", "rot6_rawprofile.png", "ok", _bytes(lambda: png_raw_profile_exif(6))),
    Kind("xmp_orientation_jpeg", "rot6_xmp.jpg", "ok", _bytes(lambda: jpeg_xmp_orientation(6))),
    Kind("exif_bad_orientation", "orient99.jpg", "ok",
         _bytes(lambda: encode(noise(20, 12), "JPEG", exif=exif_with(99)))),
    Kind("huge_exif_jpeg", "huge_exif.jpg", "ok",
         _bytes(lambda: encode(noise(20, 12), "JPEG", exif=exif_with(6, blob=60_000)))),
    Kind("huge_exif_png", "huge_exif.png", "ok",
         _bytes(lambda: encode(noise(20, 12), "PNG", exif=exif_with(1, blob=4_000_000)))),
    Kind("animated_gif", "anim.gif", "ok", _bytes(lambda: animated("GIF"))),
    Kind("animated_png", "anim.png", "ok", _bytes(lambda: animated("PNG"))),
    Kind("animated_webp", "anim.webp", "ok", _bytes(lambda: animated("WEBP"))),
    Kind("progressive_jpeg", "progressive.jpg", "ok",
         _bytes(lambda: encode(noise(48, 40), "JPEG", progressive=True, optimize=True))),
    Kind("jpeg_trailing_garbage", "trailing.jpg", "ok",
         _bytes(lambda: encode(noise(32, 32), "JPEG") + b"\x00garbage after EOI\xff\xd8" * 50)),
    Kind("png_trailing_garbage", "trailing.png", "ok",
         _bytes(lambda: encode(noise(32, 32), "PNG") + b"garbage after IEND" * 50)),
    # other formats
    Kind("webp", "plain.webp", "ok", _bytes(lambda: encode(noise(30, 20), "WEBP"))),
    Kind("tiff", "plain.tif", "ok", _bytes(lambda: encode(noise(30, 20), "TIFF", compression="tiff_lzw"))),
    Kind("bmp", "plain.bmp", "ok", _bytes(lambda: encode(noise(30, 20), "BMP"))),
    Kind("ppm", "plain.ppm", "ok", _bytes(lambda: encode(noise(30, 20), "PPM"))),
    # names and file-system objects
    Kind("non_utf8_name", os.fsdecode(b"\xff\xfe.jpg"), "ok", _bytes(lambda: encode(noise(32, 32), "JPEG"))),
    Kind("unicode_spaces_name", "my phöto 猫 (1) .jpg", "ok", _bytes(lambda: encode(noise(32, 32), "JPEG"))),
    Kind("no_read_permission", "noperm.jpg", "ok" if IS_ROOT else "error", _noperm),
    Kind("directory_named_jpg", "folder.jpg", "error", _mkdir),
    Kind("fifo", "fifo.jpg", "error", _fifo),
    Kind("symlink_to_dev_zero", "devzero.jpg", "error", _symlink("/dev/zero")),
    Kind("dangling_symlink", "dangling.jpg", "error", _symlink("does-not-exist.jpg")),
    Kind("symlink_loop_a", "loop_a.jpg", "error", _symlink("loop_b.jpg")),
    Kind("symlink_loop_b", "loop_b.jpg", "error", _symlink("loop_a.jpg")),
    Kind("symlink_to_good", "good_link.png", "ok", _symlink("one.png")),
    Kind("dir_symlink_named_jpg", "dirlink.jpg", "error", _symlink(".")),
]


def make_corpus(root: Path) -> dict[str, str]:
    """Write every kind under ``root`` (plus a directory symlink loop) → ``{file name: "ok" | "error"}``.

    A kind the file system refuses (a non-UTF-8 name, a FIFO) is left out of the result.
    """
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    for k in KINDS:
        try:
            k.write(root / k.name)
        except (OSError, UnicodeError, NotImplementedError):
            continue  # not possible on this file system / platform
        out[k.name] = k.expected
    loop = root / "dirloop"  # dirloop/a/up -> .. : an endless tree for anything that follows folder symlinks
    (loop / "a").mkdir(parents=True, exist_ok=True)
    try:
        os.symlink("..", loop / "a" / "up")
        os.symlink("loop2", loop / "loop1")
        os.symlink("loop1", loop / "loop2")
    except OSError:
        pass
    return out
