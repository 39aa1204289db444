"""Issue 3 end to end on tiny fixtures: the CIFAR-10 batch reader (and its refusal of hostile pickles), the
detector protocol (group splits, metrics, processed negatives, adaptive attack, plots), the seed reproduction
and their command lines."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from fakescope.adversarial import (
    CheckpointDetector,
    ResidualCNN,
    adversarial_benchmark,
    attack_sets_from_dirs,
    build_attack_sets,
    create_detector,
    evaluate_scores,
    fit_detector,
    group_split,
    pair_leak,
    paired_imageset,
)
from fakescope.adversarial.adaptive import adaptive_evaluation, adaptive_pgd
from fakescope.adversarial.attacks.stats import predict
from fakescope.adversarial.manifest import write_attack
from fakescope.adversarial.protocol import gaussian_like, l2_per_image, noisy_negatives
from fakescope.cli.main import main
from fakescope.data import DataError, ImageSet, load_dataset
from fakescope.data.cifar import UnsafePickleError, safe_load_batch
from fakescope.io import sha256_file
from fakescope.models import CIFAR10_CLASSES, ModelSpec, Net, save_checkpoint
from fakescope.studies.reproduce_adversarial import format_reproduce_adversarial, reproduce_adversarial
from fakescope.training.config import TrainConfig
from fakescope.training.loop import fit
from tests.helpers.adversarial import structured

FAST_RESIDUAL = {"epochs": 3, "width": 4, "batch_size": 16}
TINY_ATTACKS = [("fgsm", 2 / 255), ("fgsm", 8 / 255), ("pgd", 8 / 255), ("deepfool-fast", None)]


# ---- CIFAR-10 python batches ------------------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):  # type: ignore[misc]
    """Writes bytes as Python 2 ``str`` (BINSTRING), like the pickles in CIFAR-10's tarball."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def _save_str(self, obj: bytes) -> None:
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_str


def py2_pickle(obj: object) -> bytes:
    import io

    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def planar(images: np.ndarray) -> np.ndarray:
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def write_batches(root: Path, n: int = 20, seed: int = 0, py2: bool = False) -> dict[str, tuple[np.ndarray, list]]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        imgs = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        doc = {b"batch_label": b"x", b"labels": labels, b"data": planar(imgs), b"filenames": [b"f.png"] * n}
        (root / name).write_bytes(py2_pickle(doc) if py2 else pickle.dumps(doc))
        out[name] = (imgs, labels)
    names = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_cases_per_batch": n}
    (root / "batches.meta").write_bytes(py2_pickle(names) if py2 else pickle.dumps(names))
    return out


@pytest.mark.parametrize("py2", [False, True])
def test_cifar_batches_read_safely(tmp_path: Path, py2: bool) -> None:
    made = write_batches(tmp_path / "cifar-10-batches-py", py2=py2)
    train = load_dataset(tmp_path, "classify", 32, "train")  # finds the tarball's sub-folder
    want = np.concatenate([made["data_batch_1"][0], made["data_batch_2"][0]])
    assert train.images.dtype == np.uint8 and np.array_equal(train.images, want)
    assert train.labels.tolist() == made["data_batch_1"][1] + made["data_batch_2"][1]
    assert train.classes == CIFAR10_CLASSES and np.array_equal(train.cifar_class, train.labels)
    test = load_dataset(tmp_path / "cifar-10-batches-py", "classify", 16, "test")
    assert test.images.shape == (20, 16, 16, 3)
    with pytest.raises(DataError, match="classify"):
        load_dataset(tmp_path, "synthetic", 32, "train")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_cifar_reader_refuses_hostile_pickles(tmp_path: Path) -> None:
    root = tmp_path / "cifar"
    write_batches(root)
    marker = tmp_path / "pwned"
    (root / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": [0]}))
    with pytest.raises(UnsafePickleError, match=r"refused to load global (posix|nt|os)\.system"):
        load_dataset(root, "classify", 32, "train")
    assert not marker.exists()
    hostile = {"builtins.eval": pickle.dumps(type("E", (), {"__reduce__": lambda s: (eval, ("1+1",))})()),
               "_codecs.encode": pickle.dumps({b"data": b"x"}, protocol=2)}
    for name, blob in hostile.items():
        (root / "data_batch_1").write_bytes(blob)
        with pytest.raises(UnsafePickleError, match=name.replace(".", r"\.")):
            safe_load_batch(root / "data_batch_1")
    from numpy._core.multiarray import _reconstruct

    huge = type("H", (), {"__reduce__": lambda s: (_reconstruct, (np.ndarray, (10**12,), b"b"))})()
    (root / "data_batch_1").write_bytes(pickle.dumps({b"data": huge, b"labels": [0]}))
    with pytest.raises(UnsafePickleError, match="reconstruction"):
        safe_load_batch(root / "data_batch_1")
    bad = {"data": {b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]},
           "labels": {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}}
    for what, doc in bad.items():
        (root / "data_batch_1").write_bytes(pickle.dumps(doc))
        with pytest.raises(DataError, match=what):
            load_dataset(root, "classify", 32, "train")
    (root / "data_batch_1").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(DataError, match="not a readable"):
        load_dataset(root, "classify", 32, "train")


# ---- protocol pieces --------------------------------------------------------------------------------------------


def test_group_split_never_separates_pairs() -> None:
    clean, _ = structured(30, seed=1)
    ds = paired_imageset(clean, 255 - clean, groups=np.arange(100, 130))
    parts = group_split(ds.groups, val=0.2, test=6, seed=3)
    seen = [set(ds.groups[idx]) for idx in parts.values()]
    assert sum(len(s) for s in seen) == 30 and set.union(*seen) == set(range(100, 130))
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:])
    assert len(seen[0]) == 6 and sorted(np.concatenate(list(parts.values()))) == list(range(60))
    for idx in parts.values():  # both members of each pair, clean and attacked
        assert (np.bincount(ds.groups[idx] - 100, minlength=30)[sorted(set(ds.groups[idx] - 100))] == 2).all()
        assert set(ds.labels[idx]) == {0, 1}
    assert pair_leak(ds.groups[parts["train"]], ds.groups[parts["test"]]) == 0.0
    assert pair_leak(np.array([1, 2]), np.array([2, 3, 4, 1])) == 0.5
    with pytest.raises(ValueError, match="groups"):
        group_split(np.arange(5), val=3, test=2)


def test_evaluate_scores() -> None:
    perfect = evaluate_scores(np.linspace(0, 1, 100), np.linspace(2, 3, 50), threshold=1.5)
    assert perfect["auroc"] == perfect["aupr"] == perfect["tpr_at_1fpr"] == perfect["accuracy"] == 1.0
    assert perfect["fpr"] == 0.0 and perfect["n_clean"] == 100 and perfect["n_attacked"] == 50
    rng = np.random.default_rng(0)
    chance = evaluate_scores(rng.normal(size=2000), rng.normal(size=2000), threshold=0.0)
    assert abs(chance["auroc"] - 0.5) < 0.05 and chance["tpr_at_5fpr"] < 0.1
    assert evaluate_scores(np.arange(100.0), 98.5 + np.arange(10))["tpr_at_1fpr"] == 1.0
    # tied clean/attacked scores (the diagonal ROC): read with sklearn's collinear points dropped, as always
    tied = evaluate_scores(np.arange(100.0), np.arange(100.0))
    assert tied["tpr_at_1fpr"] == tied["tpr_at_5fpr"] == 0.01 and tied["auroc"] == 0.5


def test_noisy_negatives_match_l2() -> None:
    clean, _ = structured(12, seed=2)
    l2 = np.full(12, 1.5)  # [0, 1] units, ≈ 7 grey levels per value
    noisy = gaussian_like(clean, l2, seed=0)
    assert noisy.dtype == np.uint8 and np.allclose(l2_per_image(clean, noisy), 1.5, rtol=0.1)
    negs = noisy_negatives(clean, {"pgd-eps8": l2})
    assert set(negs) == {"jpeg-q75", "jpeg-q85", "jpeg-q95", "resize-x0.5", "resize-x0.75", "noise-l2-pgd-eps8"}
    assert all(v.shape == clean.shape and v.dtype == np.uint8 for v in negs.values())


@pytest.mark.slow
def test_detectors_beat_chance(victim: Net) -> None:
    """On held-out pairs of a structured fixture, every detector separates FGSM-16 copies from originals."""
    x, y = structured(160, seed=11)
    sets = build_attack_sets(victim, x, y, [("fgsm", 16 / 255)])
    adv = sets["fgsm-eps16"]["images"]
    parts = group_split(np.arange(len(x)), val=30, test=50, seed=0)
    tr, va, te = parts["train"], parts["val"], parts["test"]
    for name in ("feature-squeeze", "mahalanobis", "residual-cnn"):
        kw = {"epochs": 8, "width": 8, "batch_size": 16} if name == "residual-cnn" else {}
        det = fit_detector(name, victim, x[tr], adv[tr], x[va], **kw)
        m = evaluate_scores(det.score(x[te]), det.score(adv[te]), det.threshold)
        assert m["auroc"] > 0.75, (name, m)


def test_adaptive_attack_respects_budget(victim: Net) -> None:
    x, y = structured(20, seed=4)
    eps = 8 / 255
    never = lambda t: torch.zeros(len(t))  # noqa: E731  (a detector that never fires)
    adv = adaptive_pgd(victim, never, x, y, eps, threshold=0.5, steps=10)
    assert adv.dtype == np.uint8 and np.abs(adv.astype(int) - x.astype(int)).max() <= 8
    det = create_detector("feature-squeeze", victim_net=victim).fit(x)
    res = adaptive_evaluation(victim, det, x, y, eps)
    assert res["applicable"] is False and "differentiable" in res["reason"]
    assert (predict(victim, adv) != y).mean() > 0  # with a blind detector it is plain PGD


# ---- the benchmark and the reproduction ---------------------------------------------------------------------------


@pytest.mark.slow
def test_benchmark_end_to_end(victim: Net, tmp_path: Path) -> None:
    x, y = structured(100, seed=7)
    doc = adversarial_benchmark(victim, ImageSet(x, y, list(CIFAR10_CLASSES)), tmp_path, n_train=40, n_val=20,
                                n_test=40, attacks=TINY_ATTACKS, train_attacks=["fgsm-eps8", "pgd-eps8"],
                                detector_kw={"residual-cnn": FAST_RESIDUAL}, adaptive_steps=5, quiet=True)
    saved = json.loads((tmp_path / "detector_eval.json").read_text())
    assert saved["sizes"] == {"train": 40, "val": 20, "test": 40} and saved["pair_leak_train_test"] == 0.0
    tags = ["fgsm-eps2", "fgsm-eps8", "pgd-eps8", "deepfool-fast"]
    assert list(doc["attacks"]) == tags
    rows = {(r["detector"], r["tag"]) for r in doc["per_attack"]}
    assert {("feature-squeeze", t) for t in tags} | {("mahalanobis", t) for t in tags} <= rows
    assert {("residual-cnn", "fgsm-eps8"), ("residual-cnn", "pgd-eps8")} <= rows
    for r in doc["per_attack"]:
        assert 0.0 <= r["auroc"] <= 1.0 and 0.0 <= r["tpr_at_5fpr"] <= 1.0 and 0.0 <= r["accuracy"] <= 1.0
        assert 0 <= r["n_fooled"] <= r["n_attacked"]  # the fooling copies are a subset of the changed ones
        assert r["auroc_fooled"] is None if r["n_fooled"] == 0 else 0.0 <= r["auroc_fooled"] <= 1.0
    row = next(r for r in doc["per_attack"] if r["detector"] == "feature-squeeze" and r["tag"] == "pgd-eps8")
    assert row["n_fooled"] > 0 and row["auroc_fooled"] is not None  # PGD-8 fools the tiny victim
    cross = doc["cross_attack"]["residual-cnn"]
    assert cross["train"] == ["fgsm-eps8", "pgd-eps8"] and np.array(cross["auroc"], float).shape == (2, 4)
    fprs = doc["noisy_negatives"]["fpr"]
    assert doc["residual_negatives"] is True and all(r["threshold_source"] == "val-fpr" for r in doc["per_attack"])
    assert set(fprs) == {"feature-squeeze@clean", "mahalanobis@clean", "residual-cnn@fgsm-eps8",
                         "residual-cnn@pgd-eps8"}
    for fams in fprs.values():
        assert {"clean", "jpeg-q75", "jpeg-q85", "jpeg-q95", "noise-l2-pgd-eps8"} <= set(fams)
        assert all(0.0 <= v <= 1.0 for v in fams.values())
    ad = doc["adaptive"]
    assert ad["feature-squeeze"]["applicable"] is False
    assert ad["residual-cnn"]["applicable"] and ad["residual-cnn"]["detector_trained_on"] == "pgd-eps8"
    for k in ("victim_fooled_rate", "detector_evaded_rate", "fooled_and_evaded_rate"):
        assert 0.0 <= ad["residual-cnn"]["adaptive"][k] <= 1.0
    assert ad["residual-cnn"]["adaptive"]["linf_max"] <= 8 / 255 + 1e-9
    for p in doc["plots"].values():
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_reproduce_adversarial_tiny(victim: Net, tmp_path: Path) -> None:
    x, y = structured(60, seed=9)
    np.savez(tmp_path / "data.npz", images=x, labels=y)
    cifake = save_checkpoint(Net(ModelSpec(arch="seed-cnn")), tmp_path / "cifake")
    r = reproduce_adversarial(victim, str(tmp_path / "data.npz"), tmp_path / "out", n=40, epochs=1,
                              cifake_model=str(cifake), strength_eps=(2 / 255, 8 / 255), rounding_eps=(0.5 / 255,),
                              residual_kw={"epochs": 1, "width": 4}, quiet=True)
    assert json.loads((tmp_path / "out" / "reproduce.json").read_text())["n_originals"] == 40
    with np.load(tmp_path / "out" / "data" / "fgsm-eps8" / "seed_dataset.npz") as z:
        assert z["images"].dtype == np.uint8 and z["images"].shape == (80, 32, 32, 3)
        assert z["labels"].tolist() == [0] * 40 + [1] * 40
    ps = r["explanations"]["pair_split"]
    assert ps["seed_split"]["pair_leak"] > 0 and ps["group_split"]["pair_leak"] == 0.0
    assert r["seed_protocol"]["n_test"] == 16 and 0 <= r["seed_protocol"]["accuracy"] <= 1
    assert [s["eps_grey_levels"] for s in r["explanations"]["attack_strength"]] == pytest.approx([2, 8])
    rnd = r["explanations"]["uint8_rounding"][0]
    assert rnd["linf_float"] == pytest.approx(0.5 / 255, abs=1e-6) and rnd["linf_uint8"] <= 1 / 255 + 1e-6
    assert rnd["pixels_changed_uint8"] < rnd["pixels_changed_float"]
    dn = r["explanations"]["double_normalisation"]
    assert dn["max_value_twice"] <= 1 / 255 and "divided by 255 again" in dn["fakescope_loader_refuses"]
    assert "accuracy" in r["cifake_pretrained"] and set(r["residual_cnn"]) == {"seed_split", "group_split"}
    table = format_reproduce_adversarial(r)
    assert "49.8%" in table and "pairs split" in table


@pytest.mark.slow
def test_command_lines(victim_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "cifar"
    write_batches(root, n=30)
    rc = main(["reproduce", "adversarial", "--victim", str(victim_ckpt), "--data", str(root), "--out",
               str(tmp_path / "rep"), "--n", "40", "--epochs", "1", "--strength-eps", "8", "--rounding-eps", "1",
               "--residual-epochs", "1", "--residual-width", "4", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "49.8%" in out and (tmp_path / "rep" / "reproduce.json").exists()
    rc = main(["adversarial-benchmark", "--victim", str(victim_ckpt), "--data", str(root), "--out",
               str(tmp_path / "bench"), "--n-train", "12", "--n-val", "6", "--n-test", "12", "--attack", "fgsm:8",
               "--detector", "feature-squeeze", "--detector", "residual-cnn", "--residual-epochs", "1",
               "--residual-width", "4", "--adaptive-attack", "fgsm:8", "--adaptive-steps", "2", "--no-negatives",
               "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "fgsm-eps8" in out and (tmp_path / "bench" / "eps_curves.png").exists()
    assert json.loads((tmp_path / "bench" / "detector_eval.json").read_text())["residual_negatives"] is False
    assert main(["reproduce", "adversarial", "--data", str(root)]) == 2  # --victim missing


# ---- degraded clean negatives, trained checkpoints, attack folders ------------------------------------------------


def test_residual_negatives_degrade_clean_images_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """negatives=True routes residual-cnn's batches through training.degrade with labels: label-1 (attacked) rows
    come out untouched, some label-0 rows degraded; negatives=False never degrades."""
    import fakescope.training.loop as training

    calls: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = []
    real = training.degrade

    def spy(x: torch.Tensor, gen: torch.Generator, y: torch.Tensor | None = None) -> torch.Tensor:
        out = real(x, gen, y)
        calls.append((x.clone(), None if y is None else y.clone(), out.clone()))
        return out

    monkeypatch.setattr(training, "degrade", spy)
    x, _ = structured(40, seed=5)
    adv = np.clip(x.astype(np.int16) + np.where(np.indices(x.shape).sum(0) % 2, 6, -6), 0, 255).astype(np.uint8)
    det = ResidualCNN(epochs=2, width=4, batch_size=16, negatives=True).fit(x, adv)
    assert det.cfg_kw["augment"] == "negatives" and np.isfinite(det.threshold) and calls
    changed_clean = 0
    for xb, yb, ob in calls:
        assert yb is not None and torch.equal(ob[yb == 1], xb[yb == 1])
        changed_clean += int((ob[yb == 0] != xb[yb == 0]).flatten(1).any(1).sum())
    assert changed_clean > 0
    calls.clear()
    assert ResidualCNN(epochs=1, width=4, batch_size=16).fit(x, adv).cfg_kw["augment"] == "none" and not calls


def _attack_folders(victim: Net, root: Path, x: np.ndarray, y: np.ndarray, idx: np.ndarray, split: str,
                    partial: int | None = None) -> list[str]:
    """``fakescope attack``-style folders under ``root/split``: fgsm-eps8 on every source, deepfool-fast on the
    first ``partial`` only; the source indices go into the manifests."""
    sets = build_attack_sets(victim, x[idx], y[idx], [("fgsm", 8 / 255), ("deepfool-fast", None)])
    for tag, st in sets.items():
        n = len(idx) if partial is None or tag == "fgsm-eps8" else partial
        manifest = {"attack": st["attack"], "eps": st["eps"], "norm": st["norm"], "stats": st["stats"],
                    "source": {"data": "fixture", "split": split, "indices": idx[:n].tolist()}}
        write_attack(root / split / tag, x[idx][:n], st["images"][:n], y[idx][:n], manifest)
    return list(sets)


@pytest.mark.slow
def test_checkpoint_detector_through_benchmark(victim: Net, victim_ckpt: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    x, y = structured(70, seed=21)
    _attack_folders(victim, tmp_path / "attacks", x, y, np.arange(40), "train")
    tags = _attack_folders(victim, tmp_path / "attacks", x, y, np.arange(40, 70), "test", partial=20)
    cfg = TrainConfig(task="adversarial", arch="srm-cnn", arch_kwargs={"width": 4}, epochs=1, batch_size=8,
                      optimizer="adam", lr=2e-3, weight_decay=0.0, augment="negatives", val_fraction=0.25,
                      log_every=0, device="cpu", out=str(tmp_path / "det"))
    fit(cfg, dataset=load_dataset(tmp_path / "attacks", "adversarial", 32, "train"), quiet=True)
    ckpt = tmp_path / "det" / "model.json"
    before = sha256_file(tmp_path / "det" / "model.safetensors")

    images, labels, groups, sets = attack_sets_from_dirs(tmp_path / "attacks" / "test", 32)
    assert len(images) == 30 and list(sets) == sorted(tags) and np.array_equal(labels, y[40:])
    assert not sets["deepfool-fast"]["changed"][20:].any() and len(np.unique(groups)) == 30
    with pytest.raises(RuntimeError, match="never refitted"):
        CheckpointDetector(ckpt).fit(images, images)
    with pytest.raises(ValueError, match="task adversarial"):
        CheckpointDetector(victim_ckpt)  # a classifier, not a detector

    doc = adversarial_benchmark(victim_ckpt, None, tmp_path / "bench", detectors=(), checkpoints=[ckpt],
                                attack_dir=tmp_path / "attacks" / "test", adaptive=("fgsm", 8 / 255),
                                adaptive_steps=3, adaptive_lambda=1.0, quiet=True)
    assert sha256_file(tmp_path / "det" / "model.safetensors") == before
    keys = {"checkpoint:det": "checkpoint", "checkpoint:det:val-threshold": "val-fpr"}
    assert {k: c["threshold_source"] for k, c in doc["checkpoints"].items()} == keys
    for c in doc["checkpoints"].values():
        assert c["parameters_unchanged"] and c["weights_file_unchanged"] and 0.0 <= c["val_fpr_at_threshold"] <= 1.0
    assert doc["checkpoints"]["checkpoint:det:val-threshold"]["val_fpr_at_threshold"] <= 0.05
    assert doc["sizes"]["train"] == 0 and sum(doc["sizes"].values()) == 30 and doc["pair_leak_val_test"] == 0.0
    assert {(r["detector"], r["tag"], r["threshold_source"]) for r in doc["per_attack"]} == \
        {(k, t, src) for k, src in keys.items() for t in tags}
    for r in doc["per_attack"]:
        assert r["trained_on"] == "checkpoint" and 0.0 <= r["fpr"] <= 1.0 and 0.0 <= r["accuracy"] <= 1.0
        assert r["n_attacked"] > 0 and 0.0 <= r["auroc"] <= 1.0 and 0.0 <= r["tpr_at_1fpr"] <= 1.0
        assert doc["noisy_negatives"]["families"][f"noise-l2-{r['tag']}"]["n"] == r["n_attacked"]  # attacked only
    for k in keys:
        assert all(0.0 <= v <= 1.0 for v in doc["noisy_negatives"]["fpr"][f"{k}@checkpoint"].values())
        ad = doc["adaptive"][k]
        assert ad["applicable"] and ad["detector_trained_on"] == "checkpoint"
        assert all(0.0 <= ad[w]["fooled_and_evaded_rate"] <= 1.0 for w in ("adaptive", "non_adaptive"))
        assert ad["adaptive"]["linf_max"] <= 8 / 255 + 1e-9

    rc = main(["adversarial-benchmark", "--victim", str(victim_ckpt), "--attack-dir", str(tmp_path / "attacks"),
               "--detector-checkpoint", str(ckpt), "--only-checkpoints", "--no-adaptive", "--attack", "fgsm:8",
               "--out", str(tmp_path / "cli"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "checkpoint:det:val-threshold" in out and "deepfool-fast" not in out
    assert sha256_file(tmp_path / "det" / "model.safetensors") == before
