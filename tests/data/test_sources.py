"""Data sources: layouts, validation of arrays, file-name parsing, caching and group-aware splits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakescope.data import (
    DataError,
    ImageSet,
    cached_decode,
    cifar_class_from_name,
    decode_image,
    expand_paths,
    images_from_array,
    load_dataset,
    load_npz,
    train_val_split,
)


@pytest.mark.parametrize("name,k", [("0000.jpg", 0), ("1234 (2).jpg", 1), ("5749 (10).jpg", 9),
                                    ("img.jpg", -1), ("12 (11).jpg", -1), ("/a/b/0042 (7).png", 6)])
def test_cifake_names(name: str, k: int) -> None:
    assert cifar_class_from_name(name) == k


def test_cifake_layout(cifake_tiny: Path) -> None:
    train = load_dataset(cifake_tiny, "synthetic", 32, "train")
    test = load_dataset(cifake_tiny, "synthetic", 32, "test")
    assert train.classes == ["REAL", "FAKE"]
    assert len(train) == 40 and len(test) == 20
    assert train.images.dtype == np.uint8 and train.images.shape[1:] == (32, 32, 3)
    assert set(train.cifar_class) <= set(range(10)) and (train.cifar_class >= 0).all()
    assert not set(train.paths) & set(test.paths)


def test_two_class_folder_any_names(tmp_path: Path) -> None:
    for cls, colour in (("cats", 0), ("dogs", 255)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (40, 20), (colour, i, 0)).save(tmp_path / cls / f"{i}.png")
    with pytest.warns(UserWarning, match="label 1"):
        ds = load_dataset(tmp_path, "synthetic", 16)
    assert ds.classes == ["cats", "dogs"] and ds.images.shape == (6, 16, 16, 3)


def test_empty_class_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "REAL").mkdir()
    (tmp_path / "FAKE").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "REAL" / "a.png")
    with pytest.raises(DataError, match="no images"):
        load_dataset(tmp_path, "synthetic")


def test_imbalance_warns(tmp_path: Path) -> None:
    for cls, n in (("REAL", 6), ("FAKE", 2)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.new("RGB", (32, 32), (i * 10, 0, 0)).save(tmp_path / cls / f"{i}.png")
    with pytest.warns(UserWarning, match="imbalance"):
        load_dataset(tmp_path, "synthetic")


def test_float_arrays_divided_twice_are_refused() -> None:
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    assert np.array_equal(images_from_array(u8), u8)
    assert np.array_equal(images_from_array(u8 / 255.0), u8)  # [0,1] floats are accepted
    assert np.array_equal(images_from_array(u8.astype(np.float32)), u8)  # [0,255] floats too
    assert np.array_equal(images_from_array(u8.transpose(0, 3, 1, 2)), u8)  # NCHW
    with pytest.raises(DataError, match="divided by 255 again"):
        images_from_array(u8 / 255.0 / 255.0)
    with pytest.raises(DataError, match="negative"):
        images_from_array(u8 / 127.5 - 1)
    with pytest.raises(DataError, match="NaN"):
        images_from_array(np.full((1, 4, 4, 3), np.nan))


def test_npz_source(tmp_path: Path) -> None:
    imgs = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=imgs, labels=np.array([0, 1, 0, 1, 1]))
    ds = load_npz(tmp_path / "a.npz")
    assert np.array_equal(ds.images, imgs) and ds.labels.tolist() == [0, 1, 0, 1, 1]
    np.savez(tmp_path / "b.npz", pixels=imgs)
    with pytest.raises(DataError, match="no 'images'"):
        load_npz(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", images=np.array([object()], dtype=object))
    with pytest.raises(DataError):
        load_npz(tmp_path / "c.npz")  # object arrays would need pickle: refused


def test_file_list_source(tmp_path: Path) -> None:
    for i in range(4):
        Image.new("RGB", (32, 32), (i * 60, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "list.txt").write_text("# comment\n0.png,0\n1.png,1\n2.png,0\nmissing.png,1\n3.png,1\n")
    ds = load_dataset(tmp_path / "list.txt")
    assert len(ds) == 4 and ds.labels.tolist() == [0, 1, 0, 1]
    assert ds.skipped and "missing.png" in ds.skipped[0][0]


def test_resize_any_size_and_mode(tmp_path: Path) -> None:
    Image.new("L", (64, 48), 200).save(tmp_path / "g.png")
    arr, info = decode_image(tmp_path / "g.png", 32)
    assert arr.shape == (32, 32, 3) and (arr == 200).all() and info.width == 64 and info.warning is None
    Image.new("RGB", (4000, 3000), (10, 20, 30)).save(tmp_path / "big.jpg")
    arr, info = decode_image(tmp_path / "big.jpg", 32)
    assert arr.shape == (32, 32, 3) and "4000x3000" in (info.warning or "")


def test_decode_cache_is_used(tmp_path: Path, cifake_tiny: Path) -> None:
    files, _ = expand_paths([str(cifake_tiny / "train")])
    a, ok, err, fp = cached_decode(files, 32)
    b, ok2, err2, fp2 = cached_decode(files, 32)
    assert fp == fp2 and np.array_equal(a, b) and ok.all()
    os.utime(files[0], ns=(1, 1))  # touching a file changes the fingerprint
    assert cached_decode(files, 32)[3] != fp


def test_expand_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "sub" / "a.png")
    (tmp_path / "notes.txt").write_text("x")
    files, problems = expand_paths([str(tmp_path), str(tmp_path / "nope"), str(tmp_path / "*.zzz")])
    assert files == [str(tmp_path / "sub" / "a.png")]
    assert len(problems) == 2


def test_split_keeps_groups_together() -> None:
    n = 200
    groups = np.repeat(np.arange(100), 2)  # an original and its attacked copy share a group
    labels = np.tile([0, 1], 100)
    ds = ImageSet(np.zeros((n, 4, 4, 3), np.uint8), labels, ["clean", "attacked"], groups=groups)
    tr, va = train_val_split(ds, 0.2, seed=3)
    assert not set(tr.groups) & set(va.groups)
    assert len(tr) + len(va) == n and 20 <= len(va) <= 60
    tr2, va2 = train_val_split(ds, 0.2, seed=3)
    assert np.array_equal(va.groups, va2.groups)  # deterministic


def test_a_per_class_limit_decodes_only_the_chosen_files(cifake_tiny: Path, tmp_path: Path) -> None:
    """``--train-limit``: the same images as subsampling the whole set, but only those files are decoded."""
    from fakescope.data.imageset import subsample_per_class

    calls: list[tuple[int, int]] = []
    limited = load_dataset(cifake_tiny, "synthetic", 32, "train", per_class=6, seed=3,
                           progress=lambda done, total: calls.append((done, total)))
    whole = load_dataset(cifake_tiny, "synthetic", 32, "train")
    ref = subsample_per_class(whole, 6, 3)
    assert calls[0] == (0, 12) and calls[-1] == (12, 12)
    assert limited.paths == ref.paths and np.array_equal(limited.images, ref.images)
    assert np.array_equal(limited.labels, ref.labels) and np.array_equal(limited.cifar_class, ref.cifar_class)
    assert limited.fingerprint == whole.fingerprint  # the data source, whatever the limit
    data = tmp_path / "d"
    for cls in ("REAL", "FAKE"):
        (data / cls).mkdir(parents=True)
        for p in sorted((cifake_tiny / "train" / cls).iterdir()):
            (data / cls / p.name).write_bytes(p.read_bytes())
    for p in ref.paths[:2]:  # chosen files that turn out unreadable: choose among the readable ones instead
        (data / Path(p).parent.name / Path(p).name).write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="unreadable"):
        got = load_dataset(data, "synthetic", 32, per_class=6, seed=3)
    with pytest.warns(UserWarning, match="unreadable"):
        want = subsample_per_class(load_dataset(data, "synthetic", 32), 6, 3)
    assert [Path(p).name for p in got.paths] == [Path(p).name for p in want.paths]
