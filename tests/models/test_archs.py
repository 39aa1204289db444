"""Registry-parametrized model tests, golden outputs of tiny models, and the model contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fakescope.inference.calibration import calibrated_probs
from fakescope.models import MODELS, ModelSpec, Net, create_model, list_models

GOLDEN = Path(__file__).parents[1] / "golden" / "arch_logits.json"


def golden_input() -> torch.Tensor:
    g = torch.Generator().manual_seed(1234)
    return torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)


def golden_net(arch: str) -> Net:
    torch.manual_seed(0)
    return Net(ModelSpec(arch=arch)).eval()


@pytest.mark.parametrize("arch", list_models())
@pytest.mark.parametrize("size", [32, 48])
def test_every_arch_runs_at_any_size(arch: str, size: int) -> None:
    net = Net(ModelSpec(arch=arch, image_size=size)).eval()
    x = torch.randint(0, 256, (3, 3, size, size), dtype=torch.uint8)
    z = net.logits(x)
    assert z.shape == (3,)
    assert torch.isfinite(z).all()
    p = calibrated_probs(z.detach().numpy(), net.spec.temperature)
    assert ((p >= 0) & (p <= 1)).all()


@pytest.mark.parametrize("arch", list_models())
def test_multiclass_head(arch: str) -> None:
    spec = ModelSpec(arch=arch, task="classify", classes=[str(i) for i in range(10)])
    if MODELS.has_tag(arch, "binary-only"):
        with pytest.raises(ValueError, match="binary"):
            Net(spec)
        return
    out = Net(spec).eval().logits(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("arch", list_models())
def test_uint8_and_float_inputs_agree(arch: str) -> None:
    """One convention: uint8 [0,255] and float [0,1] give the same logits (normalisation inside the model)."""
    net = golden_net(arch)
    x = golden_input()
    torch.testing.assert_close(net.logits(x), net.logits(x.float() / 255.0))


@pytest.mark.parametrize("arch", list_models())
def test_golden_logits(arch: str) -> None:
    """Seeded tiny models give the recorded logits (catches silent architecture changes)."""
    golden = json.loads(GOLDEN.read_text())
    with torch.no_grad():
        z = golden_net(arch).logits(golden_input())
    torch.testing.assert_close(z, torch.tensor(golden[arch]), atol=1e-4, rtol=1e-4)


def test_seed_cnn_matches_the_keras_layers() -> None:
    body = create_model("seed-cnn")
    kinds = [type(m).__name__ for m in body]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear",
                     "BatchNorm1d", "ReLU", "Linear"]
    assert body[0].out_channels == 64 and body[0].kernel_size == (3, 3)
    assert body[7].in_features == 6 * 6 * 64 and body[7].out_features == 64
    assert body[10].out_features == 1
    # Keras Conv2D(64,3) + Conv2D(64,3) + Dense(64) + BN + Dense(1) parameter count (BN moving stats excluded)
    trainable = sum(p.numel() for p in body.parameters())
    assert trainable == (3 * 9 * 64 + 64) + (64 * 9 * 64 + 64) + (2304 * 64 + 64) + 2 * 64 + (64 + 1)


def test_registry_rejects_unknown_and_duplicates() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        create_model("nope")
    with pytest.raises(ValueError, match="already registered"):
        MODELS.register("fast")(lambda **kw: None)


@pytest.mark.parametrize("bad", [{"threshold": 2.0}, {"temperature": 0.0}, {"image_size": 1},
                                 {"std": [1, 0, 1]}, {"classes": ["only"]}, {"mean": [0.5]}])
def test_spec_validation(bad: dict) -> None:
    with pytest.raises(ValueError, match="invalid model spec"):
        ModelSpec.from_dict({"arch": "fast", **bad})
