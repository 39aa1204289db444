"""The detector contract: every factory takes the same keywords, every detector declares ``trains_on_attacks``
and offers (or not) an ``attack_objective`` whose torch score makes the same decisions as ``score``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fakescope.adversarial import (
    AdversarialDetector,
    CheckpointDetector,
    FeatureSqueezing,
    Mahalanobis,
    ResidualCNN,
    create_detector,
    list_detectors,
    run_attack,
)
from fakescope.adversarial.protocol import fit_detector
from fakescope.models import Net, resolve
from tests.helpers.adversarial import structured

TINY_RESIDUAL = {"epochs": 2, "width": 4, "batch_size": 16, "threads": 1}


@pytest.fixture(scope="module")
def pairs(victim: Net) -> tuple[np.ndarray, np.ndarray]:
    x, y = structured(60, seed=13)
    return x, run_attack(victim, x, y, "fgsm")[0]


def _floats(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("name", list_detectors())
def test_every_factory_takes_the_same_keywords(name: str, victim: Net) -> None:
    det = create_detector(name, victim_net=victim, fpr=0.1, seed=3)
    assert det.fpr == 0.1 and det.name == name
    assert "trains_on_attacks" in type(det).__dict__, "each detector states whether it trains on attacks"
    assert det.attack_objective() is None  # nothing to differentiate before fit
    assert create_detector(name, victim_net=victim, seed=None).fpr == 0.05  # None means the default


def test_capabilities_replace_type_tests() -> None:
    assert ResidualCNN.trains_on_attacks
    assert not any(c.trains_on_attacks for c in (Mahalanobis, FeatureSqueezing, CheckpointDetector))
    assert AdversarialDetector.attack_objective(AdversarialDetector()) is None


@pytest.mark.parametrize("name", list_detectors())
def test_attack_objective_decides_as_score(name: str, victim: Net, pairs: tuple[np.ndarray, np.ndarray]) -> None:
    x, adv = pairs
    kw = TINY_RESIDUAL if name == "residual-cnn" else {}
    det = fit_detector(name, victim, x[:40], adv[:40], x[40:], seed=1, **kw)
    objective = det.attack_objective()
    if name == "feature-squeeze":  # bit-depth rounding and medians: nothing to differentiate
        assert objective is None
        return
    assert objective is not None
    fn, threshold = objective
    images = np.concatenate([x[40:], adv[40:]])
    xt = _floats(images).requires_grad_(True)
    s = fn(xt)
    (g,) = torch.autograd.grad(s.sum(), xt)
    assert s.shape == (len(images),) and g.abs().sum() > 0
    np.testing.assert_allclose(s.detach().numpy(), det.score(images), rtol=1e-4, atol=1e-4)
    assert threshold == det.threshold


def test_checkpoint_objective_is_its_log_odds() -> None:
    det = CheckpointDetector(resolve("adversarial"))
    fn, threshold = det.attack_objective()
    x, _ = structured(6, seed=2)
    with torch.no_grad():
        p = torch.sigmoid(fn(_floats(x))).numpy()
    np.testing.assert_allclose(p, det.score(x), atol=1e-5)
    assert threshold == pytest.approx(np.log(det.threshold / (1 - det.threshold)))
