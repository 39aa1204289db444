"""Property-based fuzzing of image intake: whatever the bytes, ``decode_image`` returns a (32, 32, 3) uint8 array
or raises ``ImageError``; ``images_from_array`` returns uint8 NHWC RGB or raises ``DataError``.

Long runs: ``python benchmarks/fuzz_decode.py --minutes 10``.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from fakescope.data import DataError, ImageError, decode_image, images_from_array

pytestmark = [pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning:PIL")]  # e.g. "Corrupt EXIF data" on mutants

EXTS = [".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".ppm", ".heic", ".txt", ""]
MAGIC = [b"", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"GIF87a", b"BM",
         b"II*\x00", b"MM\x00*", b"RIFF\x00\x01\x00\x00WEBPVP8 ", b"P6\n", b"P5\n8 8\n65535\n", b"\x00\x00\x00\x0cjP"]
MODES = ["L", "RGB", "RGBA", "P", "I;16", "CMYK"]
FORMATS = ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"]
BYTES_PER_PIXEL = {"L": 1, "RGB": 3, "RGBA": 4, "P": 1, "I;16": 2, "CMYK": 4}
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _saveable(mode: str, fmt: str) -> bool:
    try:
        Image.new(mode, (2, 2)).save(io.BytesIO(), fmt)
    except (OSError, ValueError, KeyError):
        return False
    return True


COMBOS = [(m, f) for m, f in itertools.product(MODES, FORMATS) if _saveable(m, f)]


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def check_decode(path: Path) -> bool:
    """The property: a valid array (True) or an ImageError with a message (False); anything else propagates."""
    try:
        arr, info = decode_image(path)
    except ImageError as e:
        assert str(e).strip()
        return False
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8 and arr.flags.c_contiguous
    assert info.width >= 1 and info.height >= 1
    return True


def encode_image(mode: str, fmt: str, w: int, h: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    im = Image.frombytes(mode, (w, h), rng.integers(0, 256, w * h * BYTES_PER_PIXEL[mode], np.uint8).tobytes())
    if mode == "P":
        im.putpalette(rng.integers(0, 256, 768, np.uint8).tobytes())
    b = io.BytesIO()
    im.save(b, fmt)
    return b.getvalue()


# a mutation: (kind, position in [0, 1), value)
mutation = st.tuples(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "repeat"]),
                     st.floats(0, 1, exclude_max=True), st.integers(0, 255))


def mutate(data: bytes, ops: list[tuple[str, float, int]]) -> bytes:
    b = bytearray(data)
    for kind, where, v in ops:
        if not b:
            break
        i = int(where * len(b))
        if kind == "flip":
            b[i] ^= 1 << (v % 8)
        elif kind == "set":
            b[i] = (0x00, 0xFF, 0x7F, 0x80, v)[v % 5]
        elif kind == "truncate":
            del b[i:]
        elif kind == "insert":
            b[i:i] = bytes([v]) * (1 + v % 16)
        elif kind == "delete":
            del b[i:i + 1 + v % 16]
        else:  # repeat a slice (duplicated chunks / markers)
            b[i:i] = b[i:i + 1 + v]
    return bytes(b)


@settings(FUZZ, max_examples=50)
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=1024), ext=st.sampled_from(EXTS))
def test_arbitrary_bytes(fuzz_dir: Path, magic: bytes, body: bytes, ext: str) -> None:
    p = fuzz_dir / f"bytes{ext}"
    p.write_bytes(magic + body)
    check_decode(p)


@settings(FUZZ, max_examples=70)
@given(combo=st.sampled_from(COMBOS), w=st.integers(1, 64), h=st.integers(1, 64), seed=st.integers(0, 2**32 - 1),
       ops=st.lists(mutation, max_size=6), ext=st.sampled_from(EXTS))
def test_mutated_valid_images(fuzz_dir: Path, combo: tuple[str, str], w: int, h: int, seed: int,
                              ops: list[tuple[str, float, int]], ext: str) -> None:
    mode, fmt = combo
    data = encode_image(mode, fmt, w, h, seed)
    p = fuzz_dir / f"mutated{ext}"
    p.write_bytes(mutate(data, ops))
    ok = check_decode(p)
    if not ops:
        assert ok, f"a valid {mode} {fmt} {w}x{h} image failed to decode"


def test_combos_cover_every_mode_and_format() -> None:
    assert {m for m, _ in COMBOS} == set(MODES) and {f for _, f in COMBOS} == set(FORMATS)


def _float_elements(width: int) -> st.SearchStrategy[float]:
    return st.one_of(st.floats(0, 1, width=width), st.floats(0, 255, width=width),
                     st.floats(allow_nan=True, allow_infinity=True, width=width))


@st.composite
def image_arrays(draw: st.DrawFn) -> tuple[np.ndarray, str]:
    dtype = draw(st.sampled_from([np.uint8, np.float32, np.float64, np.int16]))
    layout = draw(st.sampled_from(["NHWC", "NCHW", "any"]))
    n, h, w = draw(st.integers(0, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8))
    c = draw(st.sampled_from([1, 3, 4, 2]))
    shape = {"NHWC": (n, h, w, c), "NCHW": (n, c, h, w)}.get(layout) or draw(hnp.array_shapes(min_dims=1, max_dims=5,
                                                                                                   max_side=5))
    if dtype == np.uint8:
        elements = st.integers(0, 255)
    elif dtype == np.int16:
        elements = st.one_of(st.integers(0, 255), st.integers(-(2**15), 2**15 - 1))
    else:
        elements = _float_elements(32 if dtype == np.float32 else 64)
    if draw(st.booleans()):  # one fill value (e.g. all 1/255, all NaN) or a full random array
        arr = np.full(shape, draw(elements), dtype)
    else:
        arr = draw(hnp.arrays(dtype, shape, elements=elements))
    return arr, layout


@settings(FUZZ, max_examples=40)
@given(case=image_arrays())
def test_images_from_array(case: tuple[np.ndarray, str]) -> None:
    arr, layout = case
    try:
        out = images_from_array(arr)
    except DataError as e:
        assert str(e).strip()
        return
    assert out.dtype == np.uint8 and out.ndim == 4 and out.shape[-1] == 3 and out.flags.c_contiguous
    assert out.shape[0] == (arr.shape[0] if arr.ndim == 4 else out.shape[0])
    if layout == "NHWC" and arr.shape[-1] == 3 and arr.dtype == np.uint8:
        assert np.array_equal(out, arr)  # already model-ready: unchanged
    if layout == "NCHW" and arr.shape[-1] not in (1, 3, 4) and arr.shape[1] in (1, 3, 4):
        assert out.shape[1:3] == arr.shape[2:4]  # unambiguous NCHW → NHWC
