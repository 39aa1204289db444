"""Packed shards: ``pack`` keeps every pixel and label, the manifest checks out, the stream gives each rank its own
blocks through a bounded buffer, and ``fit`` trains from shards."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from fakescope.cli.main import main
from fakescope.data import load_dataset
from fakescope.data.imageset import DataError
from fakescope.data.shards import MANIFEST, ShardSet, _ShardWriter, pack
from fakescope.models import load_checkpoint
from fakescope.training.loop import fit
from tests.helpers.training import tiny_cfg


def _digests(images: np.ndarray, labels: np.ndarray) -> list[tuple[str, int]]:
    return sorted((hashlib.sha1(im.tobytes()).hexdigest(), int(y)) for im, y in zip(images, labels, strict=True))


def test_pack_keeps_every_image_and_label(cifake_tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    assert main(["pack", str(cifake_tiny), "--out", str(out), "--shard-images", "7", "--quiet"]) == 0
    ss = ShardSet.open(out)
    m = json.loads((out / MANIFEST).read_text())
    assert m["counts"] == {"REAL": 20, "FAKE": 20} and m["total"] == 40 and len(m["shards"]) == 6
    assert [e["count"] for e in m["shards"]] == [7] * 5 + [5] and ss.verify() == []
    folder = load_dataset(cifake_tiny, "synthetic", 32, "train")
    packed = np.concatenate([ss.images(s) for s in range(len(m["shards"]))])
    assert _digests(packed, ss.labels) == _digests(folder.images, folder.labels)
    assert m["fingerprint"] == folder.fingerprint  # the same source fingerprint as train --data FOLDER
    assert 0 < ss.labels[:20].sum() < 20  # shuffled once: shards mix the classes
    idx = np.array([39, 0, 8, 7])
    np.testing.assert_array_equal(ss.gather(idx), packed[idx])
    with pytest.raises(FileExistsError, match="already holds shards"):
        pack(cifake_tiny, out)


def test_unreadable_files_are_skipped_and_listed(cifake_tiny: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for cls in ("REAL", "FAKE"):
        (src / cls).mkdir(parents=True)
        for f in sorted((cifake_tiny / "train" / cls).glob("*.jpg"))[:5]:
            (src / cls / f.name).write_bytes(f.read_bytes())
    (src / "FAKE" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match="1 unreadable"):
        m = pack(src, tmp_path / "out")
    assert m["total"] == 10 and m["n_skipped"] == 1 and m["skipped"][0][0].endswith("broken.jpg")


def test_a_pack_without_manifest_or_with_a_bad_shard_is_refused(cifake_tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    pack(cifake_tiny, out, shard_images=16)
    (out / MANIFEST).rename(tmp_path / "saved.json")
    with pytest.raises(DataError, match="did not finish"):
        ShardSet.open(out)
    (tmp_path / "saved.json").rename(out / MANIFEST)
    np.save(out / "shard-00001.images.npy", np.zeros((3, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match="the manifest says 16 images"):
        ShardSet.open(out)


def _ids(n: int, per_shard: int, root: Path) -> ShardSet:
    """``n`` images whose first two pixels' red channels hold the image's index."""
    w = _ShardWriter(root, 4, per_shard, 2)
    for i in range(n):
        im = np.zeros((4, 4, 3), np.uint8)
        im[0, 0, 0], im[0, 1, 0] = i % 256, i // 256
        w.add(im, i % 2)
    w.flush()
    root.joinpath(MANIFEST).write_text(json.dumps({"format": "fakescope-shards/1", "image_size": 4,
                                                   "classes": ["REAL", "FAKE"], "shards": w.shards}))
    return ShardSet.open(root)


def _stream_ids(ss: ShardSet, keep: np.ndarray, seed: int, rank: int, world: int, batch: int, steps: int,
                **kw: int) -> list[np.ndarray]:
    return [x[:, 0, 0, 0].astype(int) + 256 * x[:, 0, 1, 0].astype(int)
            for x, _y in ss.stream(keep, seed, rank, world, batch, steps, **kw)]


def test_each_rank_streams_its_own_blocks_and_every_image_once(tmp_path: Path) -> None:
    ss = _ids(1024, 300, tmp_path)
    keep = np.ones(1024, bool)
    keep[::10] = False  # held out (validation): never streamed
    epochs = []
    for seed in (1, 2):
        ranks = [np.concatenate(_stream_ids(ss, keep, seed, r, 2, 8, 50, block=64)) for r in range(2)]
        assert not set(ranks[0]) & set(ranks[1])  # disjoint shares
        for r in ranks:
            assert len(r) == 400 and len(set(r)) == 400 and keep[r].all()
        epochs.append(ranks)
    assert set(epochs[0][0]) != set(epochs[1][0])  # other blocks for rank 0 next epoch
    one = np.concatenate(_stream_ids(ss, keep, 1, 0, 1, 8, 115, block=64))  # one rank: all 921, minus a remainder
    assert len(set(one)) == 920 and set(one) <= set(np.flatnonzero(keep))


def test_the_shuffle_buffer_is_bounded(tmp_path: Path) -> None:
    ss = _ids(4096, 4096, tmp_path)
    first = _stream_ids(ss, np.ones(4096, bool), 0, 0, 1, 16, 1, buffer_bytes=256 * 48, block=64)[0]
    blocks = {int(i) // 64 for i in first}
    assert len(blocks) <= 5  # 256 images of buffer (+ one block) = at most 5 blocks read before the first batch


def test_a_short_share_starts_again(tmp_path: Path) -> None:
    ss = _ids(100, 100, tmp_path)
    got = np.concatenate(_stream_ids(ss, np.ones(100, bool), 0, 0, 1, 30, 5, block=64))
    assert len(got) == 150 and set(got) == set(range(100))


def test_fit_trains_from_shards(cifake_tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    pack(cifake_tiny, out, shard_images=9)
    m = fit(tiny_cfg(tmp_path / "run", out, epochs=2), quiet=True)
    assert 0 <= m["val_acc"] <= 1 and m["val_size"] == 8
    _net, meta = load_checkpoint(tmp_path / "run" / "model.json")
    assert meta["data_fingerprint"] == json.loads((out / MANIFEST).read_text())["fingerprint"]
    with pytest.raises(DataError, match="packed at 32x32"):
        fit(tiny_cfg(tmp_path / "r64", out, image_size=64), quiet=True)
