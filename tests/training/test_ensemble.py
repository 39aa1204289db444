"""``ensemble``: averaging trained models' scaled logits, and ``fakescope ensemble`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fakescope.cli.main import main
from fakescope.data import load_dataset, train_val_split
from fakescope.inference.calibration import calibrated_probs
from fakescope.inference.predict import predict_logits
from fakescope.models import ModelSpec, Net, load_checkpoint
from fakescope.training.ensemble import assemble_ensemble
from fakescope.training.loop import fit
from tests.helpers.training import tiny_cfg


def _net(seed: int, temperature: float, arch: str = "fast", **spec: object) -> Net:
    torch.manual_seed(seed)
    return Net(ModelSpec(arch=arch, arch_kwargs={"width": 4}, temperature=temperature, **spec)).eval()


def test_logits_are_the_mean_of_the_scaled_members() -> None:
    a, b = _net(0, 0.5), _net(1, 2.0, arch="best")
    ens = assemble_ensemble([a, b])
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        want = (a.logits(x) / 0.5 + b.logits(x) / 2.0) / 2
        torch.testing.assert_close(ens.logits(x), want)


def test_members_must_share_the_input_contract() -> None:
    with pytest.raises(ValueError, match="differ in std"):
        assemble_ensemble([_net(0, 1.0), _net(1, 1.0, std=[0.2, 0.2, 0.2])])
    with pytest.raises(ValueError, match="at least 2"):
        assemble_ensemble([_net(0, 1.0)])


@pytest.mark.slow
def test_ensemble_command_calibrates_on_the_shared_validation_split(cifake_tiny: Path, tmp_path: Path) -> None:
    fit(tiny_cfg(tmp_path / "a", cifake_tiny, epochs=1, seed=1), quiet=True)
    fit(tiny_cfg(tmp_path / "b", cifake_tiny, epochs=1, seed=2, split_seed=1), quiet=True)
    fit(tiny_cfg(tmp_path / "c", cifake_tiny, epochs=1, seed=3), quiet=True)  # split seed 3: another split
    code = main(["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "--data", str(cifake_tiny),
                 "--out", str(tmp_path / "ens")])
    assert code == 0
    net, doc = load_checkpoint(tmp_path / "ens" / "model.json")
    assert net.spec.arch == "ensemble" and len(doc["ensemble_of"]) == 2
    assert doc["metrics"]["test_size"] == 20 and 0.0 <= doc["metrics"]["test_accuracy"] <= 1.0
    assert json.loads((tmp_path / "ens" / "metrics.json").read_text())["n"] == 20
    _, val = train_val_split(load_dataset(str(cifake_tiny), "synthetic", 32, "train"), 0.2, 1)
    probs = calibrated_probs(predict_logits(net, val.images, tta=True), net.spec.temperature)
    assert doc["metrics"]["val_acc"] == float(((probs >= net.spec.threshold) == val.labels).mean())
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "c"), "--data", str(cifake_tiny),
                 "--out", str(tmp_path / "bad")]) != 0  # different validation splits: refused
