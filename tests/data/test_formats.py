"""Phone and web formats decode (AVIF through Pillow, HEIC through pillow-heif); known formats fakescope refuses
say so by name; folder walks report what they leave out and why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakescope.data import ImageError, decode_image, expand_paths
from fakescope.data import images as img
from fakescope.data.files import HIDDEN, NO_EXTENSION, NOT_IMAGE, UNSUPPORTED, skip_reason

RED, BLUE = (220, 30, 30), (30, 30, 220)


def halves(w: int = 48, h: int = 32) -> Image.Image:
    """Left half red, right half blue: orientation and colours survive a lossy codec."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2], a[:, w // 2:] = RED, BLUE
    return Image.fromarray(a)


def _check_halves(arr: np.ndarray) -> None:
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8
    left, right = arr[:, :12].reshape(-1, 3).mean(0), arr[:, 20:].reshape(-1, 3).mean(0)
    assert np.abs(left - RED).max() < 25 and np.abs(right - BLUE).max() < 25, (left, right)


@pytest.mark.skipif(not img.avif_supported(), reason="this Pillow has no AVIF codec")
def test_avif_decodes(tmp_path: Path) -> None:
    halves().save(tmp_path / "photo.avif", "AVIF", quality=95)
    arr, info = decode_image(tmp_path / "photo.avif")
    assert (info.format, info.width, info.height) == ("AVIF", 48, 32)
    _check_halves(arr)


@pytest.mark.skipif(not img.heif_supported(), reason="pillow-heif is not installed")
def test_heic_decodes_and_is_found_in_folders(tmp_path: Path) -> None:
    halves().save(tmp_path / "IMG_0001.HEIC", "HEIF", quality=95)
    arr, info = decode_image(tmp_path / "IMG_0001.HEIC")
    assert (info.format, info.width, info.height) == ("HEIF", 48, 32)
    _check_halves(arr)
    files, _ = expand_paths([str(tmp_path)])
    assert [Path(f).name for f in files] == ["IMG_0001.HEIC"]


def test_without_the_plugin_heic_is_a_named_unsupported_format(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(300)
    (tmp_path / "x.heic").write_bytes(data)
    monkeypatch.setattr(img, "heif_supported", lambda: False)
    with pytest.raises(ImageError, match=r"format not supported: HEIF/HEIC \(needs pip install pillow-heif\)"):
        decode_image(tmp_path / "x.heic")


@pytest.mark.parametrize(("data", "name"), [
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "EPS"),
    (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "PDF"),
    (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>\n', "SVG"),
    (b"8BPS\x00\x01" + bytes(40), "PSD"),
])
def test_known_refused_formats_are_named(tmp_path: Path, data: bytes, name: str) -> None:
    (tmp_path / "named.jpg").write_bytes(data)  # whatever the file is called
    with pytest.raises(ImageError, match=f"format not supported: {name}"):
        decode_image(tmp_path / "named.jpg")


def test_unknown_bytes_stay_unknown_or_corrupt(tmp_path: Path) -> None:
    (tmp_path / "junk.png").write_bytes(b"\x01\x02 nothing an image starts with" * 20)
    with pytest.raises(ImageError, match="unknown or corrupt format"):
        decode_image(tmp_path / "junk.png")


@pytest.mark.parametrize(("name", "why"), [("a.jpg", None), ("b.HEIC", None), ("c.avif", None), ("d.tga", None),
                                           ("notes.txt", NOT_IMAGE), ("README", NO_EXTENSION),
                                           ("fig.eps", UNSUPPORTED), ("doc.pdf", UNSUPPORTED), (".DS_Store", HIDDEN),
                                           (".hidden.png", None)])
def test_skip_reason(name: str, why: str | None) -> None:
    assert skip_reason(name) == why


def test_expand_paths_lists_what_it_leaves_out(tmp_path: Path) -> None:
    halves().save(tmp_path / "ok.png")
    for name in ("notes.txt", "data.json", "README", "fig.eps"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.txt").write_bytes(b"x")
    skipped: list[tuple[str, str]] = []
    files, problems = expand_paths([str(tmp_path), str(tmp_path / "notes.txt")], skipped=skipped)
    assert [Path(f).name for f in files] == ["ok.png", "notes.txt"]  # named explicitly: kept, to get its error
    assert sorted((Path(p).name, why) for p, why in skipped) == [
        ("README", NO_EXTENSION), ("data.json", NOT_IMAGE), ("fig.eps", UNSUPPORTED), ("more.txt", NOT_IMAGE),
        ("notes.txt", NOT_IMAGE)]
    assert problems == []
