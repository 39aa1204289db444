"""Golden scores: every bundled model on the bundled samples, pinned to 1e-6 (written by tools/make_golden.py
before the package was reshaped). Both inference engines and the scan path must reproduce them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fakescope import load_detector, scan
from fakescope.data import decode_image
from fakescope.models import list_bundled

GOLDEN = json.loads((Path(__file__).parent / "golden" / "bundled_scores.json").read_text())
SAMPLES = Path(__file__).resolve().parents[1] / "src" / "fakescope" / "samples"


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.stack([decode_image(SAMPLES / f, 32)[0] for f in GOLDEN["files"]])


def test_golden_covers_every_bundled_model() -> None:
    assert sorted(GOLDEN["scores"]) == list_bundled()
    assert sorted(GOLDEN["onnx_scan_scores"]) == ["best", "fast", "fast-robust"]
    assert len(GOLDEN["files"]) == 60


@pytest.mark.parametrize("name", sorted(GOLDEN["scores"]))
def test_torch_engine_matches_golden(name: str, images: np.ndarray) -> None:
    got = load_detector(name).scores(images)
    np.testing.assert_allclose(got, np.asarray(GOLDEN["scores"][name]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["fast", "fast-robust", "best"])
@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_scan_matches_golden(name: str, engine: str) -> None:
    rows = scan([str(SAMPLES)], name, engine=engine)
    by_path = {str(Path(r.path).relative_to(SAMPLES)): r.score for r in rows}
    got = np.array([by_path[f] for f in GOLDEN["files"]])
    want = GOLDEN["onnx_scan_scores" if engine == "onnx" else "scores"][name]
    np.testing.assert_allclose(got, np.asarray(want), rtol=0, atol=1e-6)
