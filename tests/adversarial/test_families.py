"""Attack families in the benchmark: leave-one-family-out, guarded components, the adaptive curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakescope.adversarial import adversarial_benchmark, create_detector, run_attack
from fakescope.adversarial.adaptive import adaptive_curve
from fakescope.adversarial.benchmark import format_benchmark
from fakescope.data import ImageSet
from fakescope.models import CIFAR10_CLASSES, Net
from tests.helpers.adversarial import structured

FAST_RESIDUAL = {"epochs": 2, "width": 4, "batch_size": 16}


@pytest.mark.slow
def test_leave_one_family_out_and_components(victim: Net, tmp_path: Path) -> None:
    x, y = structured(100, seed=31)
    doc = adversarial_benchmark(victim, ImageSet(x, y, list(CIFAR10_CLASSES)), tmp_path, n_train=40, n_val=20,
                                n_test=40, detectors=("residual-cnn",), train_attacks=["fgsm-eps8"],
                                attacks=[("fgsm", 8 / 255), ("simba", 8 / 255), ("spatial", None)],
                                attack_kw={"simba": {"max_iter": 150}, "spatial": {"n_rotations": 3}},
                                detector_kw={"residual-cnn": FAST_RESIDUAL}, adaptive=None, quiet=True,
                                leave_one_out=True, checkpoints=["adversarial"])
    fams = {"fgsm-eps8": "gradient", "simba-eps8": "score-based", "spatial": "spatial"}
    lofo = doc["leave_one_family_out"]
    assert lofo["families"] == fams and set(lofo["runs"]) == {"all", *fams.values()}
    for held, run in lofo["runs"].items():
        assert all(fams[t] != held for t in run["trained_on"]) and run["n_pairs"] > 0
    assert {(r["family"], r["tag"]) for r in lofo["table"]} == {(f, t) for t, f in fams.items()}
    assert all(0 <= r["auroc_held_out"] <= 1 and 0 <= r["auroc_all"] <= 1 for r in lofo["table"])
    assert set(doc["families"]) == {"gradient", "score-based", "spatial"}
    (comp,) = doc["components"].values()  # the bundled guarded detector, at its own threshold
    assert set(comp["per_attack"]) == set(fams) and len(comp["clean_median"]) == 2
    for r in comp["per_attack"].values():
        assert r["family"] in fams.values() and 0 <= r["auroc_residual"] <= 1 and 0 <= r["auroc_guarded"] <= 1
    assert all(np.isfinite(comp["clean_median"]))  # standardised by the checkpoint's clean calibration statistics
    text = format_benchmark(doc)
    assert "leave-one-family-out" in text and "residual" in text and "score-based" in text


def test_adaptive_curve_lowers_the_detector_score(victim: Net) -> None:
    x, y = structured(120, seed=32)
    adv, _ = run_attack(victim, x, y, "pgd")
    det = create_detector("residual-cnn", threads=1, epochs=4, width=4, batch_size=16).fit(x[:80], adv[:80])
    c = adaptive_curve(victim, det, x[80:], y[80:], eps_grid=(8 / 255,), steps_grid=(3, 8), lam=(1.0, 4.0))
    assert c["applicable"] and [(p["eps"], p["steps"]) for p in c["points"]] == [(8 / 255, 3), (8 / 255, 8)]
    assert all(0 <= p["fooled_and_evaded_rate"] <= 1 and p["linf_max"] <= 8 / 255 + 1e-9 for p in c["points"])
    for tr in c["traces"].values():
        assert len(tr["detector_hinge_mean"]) == 8 and len(tr["won_rate"]) == 8
        assert tr["won_rate"] == sorted(tr["won_rate"])  # once won, an image stays won
    t4 = c["traces"]["eps8-lam4"]
    assert t4["detector_hinge_mean"][-1] < t4["detector_hinge_mean"][0] or t4["detector_hinge_mean"][0] == 0
