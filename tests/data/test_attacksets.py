"""Attack folders as training data: one folder, folders of folders, the seed's .npz files, and pair groups."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from fakescope.adversarial import write_attack
from fakescope.data import DataError, load_dataset, train_val_split
from fakescope.data.attacksets import find_attack_dirs, image_digests, shared_originals
from tests.helpers.adversarial import attack_folder, block_noise, smooth


def test_groups_tie_each_original_to_all_its_copies(tmp_path: Path) -> None:
    src, idx, root = smooth(30, 0), np.arange(100, 130), tmp_path / "attacks"
    attack_folder(root / "a-eps4", src[:20], 4, 1, idx[:20])
    attack_folder(root / "b-eps8", src[10:30], 8, 2, idx[10:30])  # rows 10..19 attacked by both
    attack_folder(root / "c-seed", src[:5], 6, 3, manifest=False)  # no manifest: merged by identical bytes
    attack_folder(root / "d-other-name", src[25:30], 2, 4, idx[25:30], data="./cifar10/")  # same source, respelled
    ds = load_dataset(root, "adversarial")
    assert ds.classes == ["clean", "attacked"] and ds.counts() == {"clean": 50, "attacked": 50}
    clean = ds.labels == 0
    dig = np.array(image_digests(ds.images))
    # one group per distinct original: a group never holds two different originals, an original never two groups
    assert len(np.unique(ds.groups)) == 30
    for g in np.unique(ds.groups):
        assert len(set(dig[clean & (ds.groups == g)])) == 1
    for d in set(dig[clean]):
        assert len(set(ds.groups[clean & (dig == d)])) == 1
    assert ds.paths[0].endswith("originals.npz#0") and ds.paths[-1].endswith("attacked.npz#4")
    assert ds.cifar_class[:20].tolist() == (np.arange(20) % 10).tolist()  # the victim's CIFAR-10 classes
    for seed in range(3):
        train, val = train_val_split(ds, 0.3, seed)
        assert not set(train.groups) & set(val.groups)
        assert shared_originals(train, val) == 0 and shared_originals(ds, val) == (val.labels == 0).sum()
        for g in np.unique(val.groups):  # each attacked copy in validation has its original beside it
            assert set(val.labels[val.groups == g]) == {0, 1}


def test_one_folder_split_folders_and_checks(tmp_path: Path) -> None:
    src = smooth(12, 5)
    one = tmp_path / "one" / "fgsm-eps8"
    adv = attack_folder(one, src, 8, 0, np.arange(12))
    ds = load_dataset(one, "adversarial")
    assert len(ds) == 24 and np.array_equal(ds.images[12:], adv) and ds.groups[:12].tolist() == ds.groups[12:].tolist()
    assert find_attack_dirs(tmp_path / "one") == [one]
    attack_folder(tmp_path / "layout" / "test" / "pgd-eps8", src[:6], 8, 1, np.arange(6))
    attack_folder(tmp_path / "layout" / "train" / "pgd-eps8", src[6:], 8, 1, np.arange(6, 12))
    te = load_dataset(tmp_path / "layout", "adversarial", split="test")
    tr = load_dataset(tmp_path / "layout", "adversarial", split="train")
    assert len(te) == len(tr) == 12 and shared_originals(tr, te) == 0
    with pytest.raises(DataError, match="image-size 32"):
        load_dataset(one, "adversarial", size=64)
    with pytest.raises(DataError, match="task 'adversarial'"):
        load_dataset(one, "synthetic")
    with pytest.raises(DataError, match="pass their attack folder"):
        load_dataset(one / "attacked.npz", "adversarial")  # one half: its labels are the victim's classes
    assert load_dataset(one / "originals.npz", "classify").classes == [str(k) for k in range(10)]


def test_unchanged_pairs_dropped_and_tampering_refused(tmp_path: Path) -> None:
    src = smooth(8, 6)
    folder = tmp_path / "deepfool"
    adv = block_noise(src, 4, 0)
    adv[:3] = src[:3]  # minimum-norm attacks leave already-misclassified images unchanged
    write_attack(folder, src, adv, np.zeros(8, np.int64), {"attack": "deepfool", "stats": {}})
    with pytest.warns(UserWarning, match="3 pair"):
        ds = load_dataset(folder, "adversarial")
    assert ds.counts() == {"clean": 5, "attacked": 5}
    doc = json.loads((folder / "manifest.json").read_text())
    doc["files"]["attacked.npz"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="SHA-256"):
        load_dataset(folder, "adversarial")


def test_seed_dataset_npz_keeps_its_groups(tmp_path: Path) -> None:
    src = smooth(6, 7)
    x = np.concatenate([src, block_noise(src, 8, 0)])
    np.savez(tmp_path / "seed_dataset.npz", images=x, labels=np.r_[np.zeros(6), np.ones(6)].astype(np.int64),
             groups=np.r_[np.arange(6), np.arange(6)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset(tmp_path / "seed_dataset.npz", "adversarial")
    assert ds.classes == ["clean", "attacked"] and ds.groups.tolist() == list(range(6)) * 2
    train, val = train_val_split(ds, 0.34, 0)
    assert not set(train.groups) & set(val.groups)


def test_art_attacks_restore_the_victims_grad_flags() -> None:
    from fakescope.adversarial import create_attack
    from fakescope.models import ModelSpec, Net

    net = Net(ModelSpec(arch="seed-cnn", task="classify", classes=[str(i) for i in range(10)])).eval()
    first = next(net.parameters())
    first.requires_grad_(False)
    x = smooth(2, 8).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    adv = create_attack("fgsm", net).generate(x, np.array([0, 1]))
    assert np.abs(adv - x).max() <= 8 / 255 + 1e-6 and np.abs(adv - x).max() > 0
    assert [p.requires_grad for p in net.parameters()] == [False] + [True] * (len(list(net.parameters())) - 1)
