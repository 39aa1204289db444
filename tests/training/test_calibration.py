"""``calibrate``: the one temperature + threshold fit (``fit``, ``ensemble``, evasion fine-tuning, ``guard``)."""

from __future__ import annotations

import numpy as np
import pytest

from fakescope.inference.calibration import (
    calibrate,
    calibrated_probs,
    choose_threshold,
    fit_temperature,
    threshold_at_fpr,
)


def _binary(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return ((2 * y - 1) * 1.5 + rng.normal(0, 1.5, n)) * 4 + 1.0, y


def test_balanced_threshold_is_fitted_on_the_temperature_scaled_probabilities() -> None:
    z, y = _binary()
    cal = calibrate(z, y)
    t = fit_temperature(z, y)
    p = calibrated_probs(z, t)
    assert cal.temperature == t and cal.threshold == choose_threshold(p, y)
    np.testing.assert_array_equal(cal.probs, p)
    assert cal.val_acc == float(((p >= cal.threshold) == y).mean()) and cal.val_acc > 0.8


def test_fpr_threshold_flags_at_most_that_fraction_of_label_0() -> None:
    z, y = _binary(seed=1)
    cal = calibrate(z, y, threshold=0.05)
    assert cal.threshold == threshold_at_fpr(cal.probs[y == 0], 0.05)
    assert (cal.probs[y == 0] > cal.threshold).mean() <= 0.05
    assert cal.threshold != calibrate(z, y).threshold  # not the balanced-accuracy one


def test_multiclass_gets_a_temperature_and_no_threshold() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 600)
    z = rng.normal(0, 1, (600, 3)) + 3 * np.eye(3)[y]
    cal = calibrate(z, y)
    assert cal.threshold is None and cal.temperature == fit_temperature(z, y)
    assert cal.probs.shape == (600, 3) and cal.val_acc == float((z.argmax(1) == y).mean())
    with pytest.raises(ValueError, match="balanced"):
        calibrate(z, y, threshold="youden")
