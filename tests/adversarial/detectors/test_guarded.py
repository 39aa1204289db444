"""The guarded detector (residual CNN + victim margin), ``fakescope guard`` and ``attack --exclude``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fakescope.adversarial.attacks.deepfool import torch_deepfool
from fakescope.adversarial.detectors.guarded import assemble, components, fit_guarded, guard
from fakescope.adversarial.run import attack_dataset, used_sources
from fakescope.cli.main import main
from fakescope.data.imageset import ImageSet
from fakescope.inference.calibration import calibrated_probs
from fakescope.models import CIFAR10_CLASSES, ModelSpec, Net, load_checkpoint, save_checkpoint
from tests.helpers.adversarial import structured, tiny_victim


def _residual(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    spec = ModelSpec(arch="srm-cnn", task="adversarial", classes=["clean", "attacked"], arch_kwargs={"width": 4})
    return Net(spec).eval()


def _deepfool(victim: Net, images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    adv = torch_deepfool(victim, x, max_iter=30)
    return (adv * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def pair() -> tuple[Net, Net]:
    return _residual(), tiny_victim()


def test_components_are_the_two_models(pair: tuple[Net, Net]) -> None:
    res, vic = pair
    net = assemble(res, vic)
    x, _ = structured(6, seed=3)
    comp = components(net, x)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    with torch.no_grad():
        r = res.logits(xt).numpy()
        top2 = vic.logits(xt).topk(2, dim=1).values.numpy()
    np.testing.assert_allclose(comp[:, 0], r, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(comp[:, 1], -np.log(top2[:, 0] - top2[:, 1] + 1e-3), rtol=1e-4, atol=1e-4)


def test_margin_flags_deepfool_images_and_threshold_holds_on_calibration(pair: tuple[Net, Net]) -> None:
    res, vic = pair
    clean, labels = structured(60, seed=5)
    with torch.no_grad():
        right = vic.logits(torch.from_numpy(clean).permute(0, 3, 1, 2)).argmax(1).numpy() == labels
    clean = clean[right]
    adv = _deepfool(vic, clean)
    n = len(clean)
    cal = ImageSet(np.concatenate([clean, adv]), np.r_[np.zeros(n, np.int64), np.ones(n, np.int64)],
                   ["clean", "attacked"], groups=np.r_[np.arange(n), np.arange(n)])
    net = assemble(res, vic)
    fit = fit_guarded(net, cal, fpr=0.1)
    assert fit["val_fpr"] <= 0.1
    comp_c, comp_a = components(net, clean), components(net, adv)
    # DeepFool stops just across the victim's boundary: its margin component is far above the clean ones
    assert np.median(comp_a[:, 1]) > np.quantile(comp_c[:, 1], 0.9)
    np.testing.assert_allclose(net.body.center.numpy(), comp_c.mean(0), rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        z = net.logits(torch.from_numpy(adv).permute(0, 3, 1, 2)).numpy()
    p = calibrated_probs(z, net.spec.temperature)
    assert (p > net.spec.threshold).mean() > 0.8


def test_round_trip_keeps_calibration(tmp_path: Path, pair: tuple[Net, Net]) -> None:
    net = assemble(*pair)
    net.body.center.copy_(torch.tensor([0.5, -1.0]))
    net.body.scale.copy_(torch.tensor([2.0, 3.0]))
    loaded, _ = load_checkpoint(save_checkpoint(net, tmp_path / "g"))
    x = torch.from_numpy(structured(4, seed=9)[0]).permute(0, 3, 1, 2)
    assert torch.equal(loaded.body.center, net.body.center) and torch.equal(loaded.body.scale, net.body.scale)
    assert torch.equal(loaded.logits(x), net.logits(x))


def test_assemble_refuses_mismatched_models(pair: tuple[Net, Net]) -> None:
    res, vic = pair
    with pytest.raises(ValueError, match="task 'adversarial'"):
        assemble(vic, vic)
    with pytest.raises(ValueError, match="classifier"):
        assemble(res, res)
    other = Net(ModelSpec(arch="fast", task="classify", classes=list(CIFAR10_CLASSES), std=[0.2, 0.2, 0.2]))
    with pytest.raises(ValueError, match="differ in std"):
        assemble(res, other)


def _class_folders(root: Path, n_per_class: int) -> None:
    from PIL import Image

    x, y = structured(10 * n_per_class, seed=11)
    for i, (img, c) in enumerate(zip(x, y, strict=True)):
        (root / str(c)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / str(c) / f"{i}.png")


@pytest.mark.slow
def test_attack_exclude_gives_disjoint_sources_and_guard_end_to_end(tmp_path: Path, pair: tuple[Net, Net]) -> None:
    res, vic = pair
    _class_folders(tmp_path / "data", 4)
    victim = save_checkpoint(vic, tmp_path / "victim")
    residual = save_checkpoint(res, tmp_path / "residual")
    attack_dataset(victim, str(tmp_path / "data"), "deepfool-fast", [None], 20, tmp_path / "test")
    attack_dataset(victim, str(tmp_path / "data"), "deepfool-fast", [None], 40, tmp_path / "calib",
                   exclude=[str(tmp_path / "test")])
    test_idx = used_sources([str(tmp_path / "test")], "test")
    cal_idx = used_sources([str(tmp_path / "calib")], "test")
    assert len(test_idx) == 20 and len(cal_idx) == 20 and not test_idx & cal_idx  # only 20 were left
    with pytest.raises(ValueError, match="every image"):
        attack_dataset(victim, str(tmp_path / "data"), "fgsm", [2 / 255], 5, tmp_path / "none",
                       exclude=[str(tmp_path / "test"), str(tmp_path / "calib")])
    code = main(["guard", "--residual", str(residual), "--victim", str(victim), "--calibration",
                 str(tmp_path / "calib"), "--test", str(tmp_path / "test"), "--fpr", "0.1", "--out",
                 str(tmp_path / "g")])
    assert code == 0
    doc = json.loads((tmp_path / "g" / "model.json").read_text())
    assert doc["spec"]["arch"] == "guarded" and doc["guarded_from"]["fpr"] == 0.1
    assert doc["metrics"]["val_fpr"] <= 0.1 and doc["metrics"]["test_size"] > 0
    assert "fakescope guard --residual" in doc["train_command"]
    net, _ = load_checkpoint(tmp_path / "g" / "model.json")
    assert net.spec.arch == "guarded"
    r = guard(str(residual), str(victim), str(tmp_path / "calib"), str(tmp_path / "g2"), fpr=0.1, quiet=True)
    assert "test_accuracy" not in r


def test_attack_params_reach_the_attack_and_its_manifest(tmp_path: Path, pair: tuple[Net, Net]) -> None:
    from fakescope.adversarial.run import parse_params

    assert parse_params(["nb_candidates=10", "precision=fp32", "overshoot=0.05"]) == {
        "nb_candidates": 10, "precision": "fp32", "overshoot": 0.05}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_params(["nb_candidates"])
    _class_folders(tmp_path / "data", 1)
    victim = save_checkpoint(pair[1], tmp_path / "victim")
    code = main(["attack", "--victim", str(victim), "--data", str(tmp_path / "data"), "--attack", "deepfool-fast",
                 "--n", "5", "--param", "nb_candidates=10", "--param", "precision=fp32", "--out", str(tmp_path / "a")])
    assert code == 0
    params = json.loads((tmp_path / "a" / "deepfool-fast" / "manifest.json").read_text())["parameters"]
    assert params["nb_candidates"] == 10 and params["precision"] == "fp32"
    with pytest.raises(ValueError, match="deepfool-fast"):
        attack_dataset(victim, str(tmp_path / "data"), "deepfool-fast", [None], 5, tmp_path / "b",
                       params={"no_such_option": 1})
