"""Image intake over a corpus of broken, hostile and unusual files (see ``corpus.py``).

Every file either decodes to a (32, 32, 3) uint8 array or raises ``ImageError`` with a message; nothing else
escapes. Semantic checks: 16-bit scaling, EXIF orientation, first animation frame, transparency on white,
decompression bombs refused from the header (fast, no pixel buffer).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageFile

from fakescope.data import ImageError, decode_image, decode_many, expand_paths
from tests.helpers.corpus import BLUE, IS_ROOT, KINDS, RED, WHITE, Kind, make_corpus

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus(root)


def decode(root: Path, name: str) -> np.ndarray:
    arr, _ = decode_image(root / name)
    return arr.astype(np.int64)


def close(pixels: np.ndarray, colour: tuple[int, ...] | int, tol: int = 8) -> bool:
    return bool((np.abs(pixels.reshape(-1, 3) - np.asarray(colour)) <= tol).all())


def test_corpus_has_enough_kinds(corpus: tuple[Path, dict[str, str]]) -> None:
    _, expected = corpus
    assert len(KINDS) >= 32 and len(expected) >= 32
    assert set(expected.values()) == {"ok", "error"}


@pytest.mark.parametrize("kind", KINDS, ids=[k.id for k in KINDS])
def test_decode_or_image_error(corpus: tuple[Path, dict[str, str]], kind: Kind) -> None:
    root, expected = corpus
    if kind.name not in expected:
        pytest.skip(f"this file system cannot hold {kind.id}")
    result: list[tuple[str, object]] = []

    def run() -> None:
        try:
            result.append(("ok", decode_image(root / kind.name)))
        except ImageError as e:
            result.append(("error", e))
        except BaseException as e:  # noqa: BLE001 - reported as a test failure below
            result.append(("crash", e))

    t = threading.Thread(target=run, daemon=True)  # a FIFO opened for reading would block forever
    t.start()
    t.join(20)
    assert result, f"{kind.id}: decode_image hung"
    outcome, out = result[0]
    assert outcome != "crash", f"{kind.id}: non-ImageError exception {out!r}"
    if outcome == "error":
        assert str(out).strip(), f"{kind.id}: empty ImageError message"
        assert expected[kind.name] == "error", f"{kind.id}: should decode, got ImageError: {out}"
        assert "object at 0x" not in str(out)  # no reprs of internal buffers in user-facing messages
        return
    assert isinstance(out, tuple)
    arr, info = out
    assert expected[kind.name] == "ok", f"{kind.id}: should be refused, decoded to {info}"
    assert isinstance(arr, np.ndarray) and arr.shape == (32, 32, 3) and arr.dtype == np.uint8
    assert arr.flags.c_contiguous and info.width >= 1 and info.height >= 1


@pytest.mark.parametrize("name", ["gray16.png", "rgb16.png", "gray16.tif", "gray16be.tif", "gray16.pgm"])
def test_16_bit_scaled_not_clipped(corpus: tuple[Path, dict[str, str]], name: str) -> None:
    assert close(decode(corpus[0], name), 128, tol=1)  # 32768 / 65535 → 128, not clipped to 255


def test_dark_16_bit_stays_dark(corpus: tuple[Path, dict[str, str]]) -> None:
    assert close(decode(corpus[0], "dark16.pgm"), 1, tol=1)  # 200 / 65535, not read as 8-bit 200


def test_float_and_int32(corpus: tuple[Path, dict[str, str]]) -> None:
    assert close(decode(corpus[0], "float.tif"), 128, tol=1)  # F in [0, 1] is scaled by 255
    assert close(decode(corpus[0], "int32.tif"), 0, tol=0)  # negative values clip to black


@pytest.mark.parametrize("name", ["rot6.jpg", "rot6.png", "rot6.webp", "rot6.tif", "rot6_rawprofile.png",
                                  "rot6_xmp.jpg"])
def test_orientation_honoured(corpus: tuple[Path, dict[str, str]], name: str) -> None:
    # stored 40x20 red-left/blue-right; orientation 6 = rotate 90° clockwise → red on top, blue at the bottom
    arr = decode(corpus[0], name)
    assert close(arr[:12], RED, tol=12) and close(arr[-12:], BLUE, tol=12), (arr[2, 2], arr[-2, -2])


def test_bad_orientation_and_huge_exif_ignored(corpus: tuple[Path, dict[str, str]]) -> None:
    for name in ("orient99.jpg", "huge_exif.jpg", "huge_exif.png"):
        assert decode(corpus[0], name).shape == (32, 32, 3)


@pytest.mark.parametrize("name", ["anim.gif", "anim.png", "anim.webp"])
def test_animation_gives_first_frame(corpus: tuple[Path, dict[str, str]], name: str) -> None:
    assert close(decode(corpus[0], name), RED, tol=10)  # frames are red, green, blue


@pytest.mark.parametrize(("name", "opaque"), [
    ("rgba.png", BLUE), ("rgba.webp", BLUE), ("la.png", (0, 0, 0)), ("palette_trns.png", RED),
    ("rgb_trns.png", BLUE), ("gray_trns.png", (200, 200, 200)),
])
def test_transparency_on_white(corpus: tuple[Path, dict[str, str]], name: str, opaque: tuple[int, ...]) -> None:
    arr = decode(corpus[0], name)  # left half fully transparent, right half opaque
    assert close(arr[:, :10], WHITE) and close(arr[:, -10:], opaque), (arr[16, 2], arr[16, -2])


def test_other_modes(corpus: tuple[Path, dict[str, str]]) -> None:
    root = corpus[0]
    assert close(decode(root, "cmyk.jpg"), (0, 255, 255))  # C=255 → cyan
    assert close(decode(root, "cmyk.tif"), (255, 0, 255))  # M=255 → magenta
    assert close(decode(root, "gray.jpg"), 100, tol=2)
    assert close(decode(root, "pa.tif"), WHITE, tol=0)  # palette + alpha 0 → white
    for name in ("onebit.png", "onebit.tif"):
        arr = decode(root, name)
        assert close(arr[:, :10], 0, tol=0) and close(arr[:, -10:], 255, tol=0)
    assert close(decode(root, "strip.png"), RED, tol=0)
    assert close(decode(root, "tall.png"), 90, tol=0)
    assert close(decode(root, "one.png"), BLUE, tol=0)


def test_size_warnings(corpus: tuple[Path, dict[str, str]]) -> None:
    root = corpus[0]
    for name, dims in [("big.jpg", "4000x3000"), ("strip.png", "20000x2"), ("one.png", "1x1")]:
        arr, info = decode_image(root / name)
        assert arr.shape == (32, 32, 3) and dims in (info.warning or ""), (name, info)
    assert decode_image(root / "plain.bmp")[1].warning is None


@pytest.mark.parametrize("name", ["bomb.png", "bomb_mid.png", "bomb.jpg", "bomb.gif"])
def test_bomb_refused_from_header(corpus: tuple[Path, dict[str, str]], name: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = corpus[0] / name
    assert path.stat().st_size < 4096
    loads: list[str] = []

    def no_load(self: ImageFile.ImageFile) -> None:
        loads.append(name)
        raise RuntimeError("pixel data must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if resource else 0
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="refused"):
        decode_image(path)
    assert time.perf_counter() - t0 < 1.0
    assert not loads, "a decompression bomb reached load()"
    if resource:  # peak RSS (KiB on Linux) may not grow by a pixel buffer (30000² bytes = 900 MB)
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 100_000


def test_error_messages(corpus: tuple[Path, dict[str, str]]) -> None:
    root = corpus[0]
    cases = {"empty.jpg": "empty", "folder.jpg": "not a regular file", "fifo.jpg": "not a regular file",
             "devzero.jpg": "not a regular file", "dangling.jpg": "cannot access", "loop_a.jpg": "cannot access",
             "sparse_huge.jpg": "too large", "text.jpg": "not a readable image", "truncated.jpg": "truncated"}
    if not IS_ROOT:
        cases["noperm.jpg"] = "denied"
    for name, words in cases.items():
        if name in corpus[1]:
            with pytest.raises(ImageError, match=words):
                decode_image(root / name)


def test_unreadable_file(corpus: tuple[Path, dict[str, str]]) -> None:
    root = corpus[0]
    if IS_ROOT:  # root ignores permission bits, so the chmod-000 file decodes: noted, not a failure
        assert decode_image(root / "noperm.jpg")[0].shape == (32, 32, 3)
    else:
        with pytest.raises(ImageError, match="permission denied"):
            decode_image(root / "noperm.jpg")


def test_permission_denied_message(corpus: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """What a non-root user gets for a chmod-000 file, simulated so that it is tested under root too."""
    import fakescope.data.images as images

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images, "open", denied, raising=False)
    with pytest.raises(ImageError, match="permission denied"):
        decode_image(corpus[0] / "noperm.jpg")


def test_expand_paths_terminates_with_loops(corpus: tuple[Path, dict[str, str]]) -> None:
    root, expected = corpus
    files, problems = expand_paths([str(root)])
    names = {os.path.relpath(f, root) for f in files}
    assert len(files) == len(names) and not problems
    assert "dirloop" not in {Path(n).parts[0] for n in names}  # nothing collected from the looping folder
    assert os.path.join("folder.jpg", "inside.png") in names  # a folder named like a file is walked
    assert {"loop_a.jpg", "loop_b.jpg", "dangling.jpg", "empty.jpg"} <= names  # bad files are listed, not lost
    assert "dirlink.jpg" not in names  # a folder symlink is neither followed nor listed as a file
    # explicitly named loops / dangling links are kept (each gets a per-file error later)
    files, problems = expand_paths([str(root / "loop_a.jpg"), str(root / "dangling.jpg"), str(root / "dirloop")])
    assert files == [str(root / "loop_a.jpg"), str(root / "dangling.jpg")] and not problems
    files, _ = expand_paths([str(root / "dirloop" / "*" / "*" / "*" / "*")])  # a glob through the loop ends too
    assert isinstance(files, list)


def test_decode_many_keeps_good_files(corpus: tuple[Path, dict[str, str]]) -> None:
    root, expected = corpus
    files, _ = expand_paths([str(root)])
    images, ok, errors = decode_many(files, 32, workers=1)
    assert images.shape == (len(files), 32, 32, 3) and images.dtype == np.uint8
    by_name = {os.path.relpath(f, root): (bool(k), e) for f, k, e in zip(files, ok, errors, strict=True)}
    for name, (good, err) in by_name.items():
        assert good == (err is None)
        if name in expected:
            assert good == (expected[name] == "ok"), (name, err)
    assert sum(ok) >= 30 and sum(not k for k in ok) >= 15
    assert not images[~ok].any()  # failed rows stay zero
    black = ("dark16.pgm", "int32.tif")  # decoded images that really are (nearly) black
    assert all(images[i].any() for i in np.flatnonzero(ok) if not files[i].endswith(black))
