"""``Detector.scores`` and the ONNX engine take one image layout convention: ``images_from_array``'s."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fakescope.data import DataError, images_from_array
from fakescope.inference.onnx_engine import available as onnx_available
from fakescope.inference.scorer import load_detector


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)


def layouts(u8: np.ndarray) -> dict[str, object]:
    """The same images in every accepted form: uint8/float, NHWC/NCHW, numpy/torch."""
    nchw = np.ascontiguousarray(u8.transpose(0, 3, 1, 2))
    return {"u8-nhwc": u8, "u8-nchw": nchw, "f01-nhwc": u8 / 255.0, "f01-nchw": nchw.astype(np.float32) / 255,
            "f255-nchw": nchw.astype(np.float32), "t-u8-nchw": torch.from_numpy(nchw),
            "t-f01-nchw": torch.from_numpy(nchw).float() / 255, "t-u8-nhwc": torch.from_numpy(u8),
            "t-f01-nchw-grad": (torch.from_numpy(nchw).float() / 255).requires_grad_()}


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_every_layout_gives_the_same_scores(engine: str, images: np.ndarray) -> None:
    if engine == "onnx" and not onnx_available():
        pytest.skip("onnx/onnxruntime not installed")
    if engine == "torch":
        det = load_detector("fast")
    else:
        from fakescope.inference.onnx_engine import OnnxDetector
        det = OnnxDetector.load("fast")
    ref = det.scores(images)
    for name, arr in layouts(images).items():
        assert np.allclose(det.scores(arr), ref, atol=1e-6), name  # the issue: u8 NCHW was "images are 3x32"
    one = det.scores(images[0])  # a single HWC image is one image
    assert one.shape == (1,) and np.allclose(one, ref[:1], atol=1e-6)
    assert np.allclose(det.scores(images[0].transpose(2, 0, 1)), ref[:1], atol=1e-6)  # one CHW image
    with pytest.raises(ValueError, match="this model takes 32x32"):
        det.scores(np.zeros((2, 16, 16, 3), np.uint8))


def test_convention_of_images_from_array() -> None:
    u8 = np.arange(2 * 6 * 5 * 3, dtype=np.uint8).reshape(2, 6, 5, 3)
    assert images_from_array(u8.transpose(0, 3, 1, 2)).shape == (2, 6, 5, 3)  # NCHW, last axis not 1/3/4
    assert images_from_array(u8[0]).shape == (1, 6, 5, 3)  # one HWC image, not 6 greyscale images of 5x3
    assert np.array_equal(images_from_array(u8[0].transpose(2, 0, 1)), u8[:1])  # one CHW image
    assert images_from_array(u8[..., :1]).shape == (2, 6, 5, 3)  # greyscale NHWC → RGB
    with pytest.raises(DataError, match="ambiguous"):
        images_from_array(np.zeros((3, 8, 4), np.uint8))  # HWC (3x8, RGBA) or CHW (8x4, RGB)?
    with pytest.raises(DataError, match="one HWC or CHW image"):
        images_from_array(np.zeros((5, 8, 8), np.uint8))  # no channel axis: refused, not read as 5 grey images
    with pytest.raises(DataError, match="channel axis"):
        images_from_array(np.zeros((2, 8, 8, 2), np.uint8))
    assert images_from_array(torch.zeros(1, 3, 4, 6, dtype=torch.bfloat16)).shape == (1, 4, 6, 3)
