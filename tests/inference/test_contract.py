"""The ``Scorer`` contract: both engines implement it, with the same answers, and it imports no torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fakescope.inference import onnx_engine as oe
from fakescope.inference.contract import Scorer
from fakescope.inference.scorer import Detector

MEMBERS = ("name", "spec", "task", "classes", "threshold", "image_size", "tta", "uses_torch", "scores", "labels")


def test_torch_engine_is_a_scorer() -> None:
    det = Detector.load("best")
    assert isinstance(det, Scorer) and det.uses_torch is True
    assert det.tta is det.spec.tta is True


@pytest.mark.skipif(not oe.available(), reason="onnx/onnxruntime not installed")
def test_onnx_engine_is_a_scorer_with_the_same_answers() -> None:
    ours, ref = oe.OnnxDetector.load("best"), Detector.load("best")
    assert isinstance(ours, Scorer) and ours.uses_torch is False
    for member in MEMBERS:
        if member not in ("uses_torch", "scores", "labels"):
            assert getattr(ours, member) == getattr(ref, member), member
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    a, b = ours.scores(images, batch_size=None), ref.scores(images, batch_size=None)
    np.testing.assert_allclose(a, b, atol=2e-5)
    assert ours.labels(a) == ref.labels(b)


def test_an_object_missing_a_member_is_not_a_scorer() -> None:
    class Partial:
        name, uses_torch = "x", False
        spec = task = classes = threshold = image_size = None

        def scores(self, images: np.ndarray, batch_size: int | None = None, bf16: bool = False) -> np.ndarray:
            return np.zeros(len(images))

        def labels(self, scores: np.ndarray, threshold: float | None = None) -> list[str]:
            return []

    assert not isinstance(Partial(), Scorer)  # no tta
    Partial.tta = False
    assert isinstance(Partial(), Scorer)


def test_the_contract_imports_no_torch() -> None:
    code = "import sys, fakescope.inference.contract\nassert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
