"""Explanations: Grad-CAM and Integrated Gradients maps, hook hygiene, mode restoration, overlays, ``explain``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fakescope.explain import (
    EXPLAINERS,
    create_explainer,
    default_target_layer,
    explain,
    explain_images,
    grad_cam,
    ig_attributions,
    integrated_gradients,
    overlay,
)
from fakescope.models import CIFAR10_CLASSES, MODELS, ModelSpec, Net, list_models, save_checkpoint
from fakescope.models.fuse import fuse_for_inference

ARCHS = list_models()
MULTICLASS_ARCHS = MODELS.names(without_tag="binary-only")
METHODS = EXPLAINERS.names()
FAST_OPTIONS = {"integrated-gradients": {"steps": 4}}  # keep the tests quick


def _net(arch: str, classes: list[str] | None = None, size: int = 16) -> Net:
    torch.manual_seed(0)
    spec = ModelSpec(arch=arch, image_size=size) if classes is None else ModelSpec(arch, classes=classes,
                                                                                      image_size=size)
    return Net(spec)


def _images(n: int = 2, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def _run(method: str, net: nn.Module, images: object, target: object = 1) -> np.ndarray:
    return explain_images(net, images, method, target, **FAST_OPTIONS.get(method, {}))


def _assert_no_hooks(net: nn.Module) -> None:
    for name, m in net.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            assert not getattr(m, attr, {}), f"{attr} left on {name or 'root'}"


def _assert_maps(maps: np.ndarray, n: int, size: int) -> None:
    assert maps.shape == (n, size, size)
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0


def test_registry() -> None:
    assert {"gradcam", "integrated-gradients"} <= set(METHODS)
    with pytest.raises(ValueError, match="unknown explainer"):
        create_explainer("nope")


@pytest.mark.parametrize("arch", ARCHS)
def test_default_target_layer_is_last_conv(arch: str) -> None:
    net = _net(arch)
    layer = default_target_layer(net)
    assert isinstance(layer, nn.Conv2d)
    assert layer is [m for m in net.body.modules() if isinstance(m, nn.Conv2d)][-1]
    fused = fuse_for_inference(net)
    assert isinstance(default_target_layer(fused), nn.Conv2d)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", ARCHS)
def test_maps_binary(arch: str, method: str) -> None:
    net = _net(arch).eval()
    for target in (1, 0, [0, 1]):
        _assert_maps(_run(method, net, _images(), target), 2, 16)
    # numpy NHWC input (the Detector convention) and float [0, 1] input give the same shapes
    _assert_maps(_run(method, net, _images().permute(0, 2, 3, 1).numpy(), target), 2, 16)
    _assert_maps(_run(method, net, _images().float() / 255, target), 2, 16)
    _assert_no_hooks(net)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", MULTICLASS_ARCHS)
def test_maps_multiclass_and_fused(arch: str, method: str) -> None:
    net = _net(arch, classes=CIFAR10_CLASSES)
    _assert_maps(_run(method, net, _images(), [3, 7]), 2, 16)
    with pytest.raises(ValueError, match="out of range"):
        _run(method, net, _images(), 10)
    _assert_no_hooks(net)
    fused = fuse_for_inference(_net(arch)).to(memory_format=torch.channels_last)
    _assert_maps(_run(method, fused, _images(3), 1), 3, 16)
    _assert_no_hooks(fused)


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", ARCHS)
def test_hooks_released_and_mode_restored_on_error(arch: str, method: str) -> None:
    net = _net(arch).train()
    with pytest.raises(RuntimeError):  # wrong channel count: fails before the body
        _run(method, net, torch.zeros(1, 4, 16, 16))
    _assert_no_hooks(net)
    last = [m for m in net.body.modules() if isinstance(m, nn.Sequential)][-1]  # holds the last conv (or after it)
    last[-1] = Boom()  # fails after the target layer's forward hook has fired
    with pytest.raises(RuntimeError, match="boom"):
        _run(method, net, _images())
    _assert_no_hooks(net)
    assert all(m.training for m in net.modules())


@pytest.mark.parametrize("method", METHODS)
def test_training_mode_and_parameters_restored(method: str) -> None:
    for arch in ARCHS:
        net = _net(arch)
        first = next(net.parameters())
        first.requires_grad_(False)
        flags = [p.requires_grad for p in net.parameters()]
        net.train()
        bn = next((m for m in net.modules() if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)), None)
        if bn is not None:
            bn.eval()  # a frozen BN inside a training model keeps its own mode
        stats = {k: v.clone() for k, v in net.state_dict().items()}
        _run(method, net, _images(1))
        assert all(m.training == (m is not bn) for m in net.modules())
        net.eval()
        _run(method, net, _images())
        assert not any(m.training for m in net.modules())
        assert [p.requires_grad for p in net.parameters()] == flags
        assert all(p.grad is None for p in net.parameters())
        assert all(torch.equal(v, stats[k]) for k, v in net.state_dict().items())  # BN statistics untouched
        _assert_no_hooks(net)


def test_inference_mode_caller() -> None:
    net = _net("fast").eval()
    with torch.inference_mode():
        _assert_maps(grad_cam(net, _images()), 2, 16)


class LeftHalf(nn.Module):
    """Masks out the right half of the image, then a positive 1x1 conv + ReLU + sum: only the left half matters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        with torch.no_grad():
            self.conv.weight.uniform_(0.1, 1.0)
            self.conv.bias.zero_()
        self.body = nn.Sequential(self.conv, nn.ReLU(inplace=True))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255 if x.dtype == torch.uint8 else x
        mask = torch.zeros_like(x)
        mask[..., : x.shape[-1] // 2] = 1
        return self.body(x * mask).sum(dim=(1, 2, 3))


@pytest.mark.parametrize("method", METHODS)
def test_left_half_net_has_left_heat(method: str) -> None:
    net = LeftHalf()
    maps = _run(method, net, _images(3, 16))
    left, right = maps[..., :8].sum(), maps[..., 8:].sum()
    assert left > 3 * right, (left, right)
    _assert_no_hooks(net)


def test_all_zero_maps_are_zero_not_nan() -> None:
    net = _net("fast").eval()
    with torch.no_grad():
        net.body[-1].fc.weight.zero_()  # the output no longer depends on the image
    for method in METHODS:
        maps = _run(method, net, _images())
        _assert_maps(maps, 2, 16)
        assert maps.max() == 0.0


def test_integrated_gradients_completeness() -> None:
    net = _net("seed-cnn").eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    attr = ig_attributions(net, x, target=1, steps=64)
    with torch.no_grad():
        gap = net.logits(x) - net.logits(torch.zeros_like(x))
    assert torch.allclose(attr.sum(dim=(1, 2, 3)), gap, rtol=0.05, atol=0.02)
    _assert_maps(integrated_gradients(net, x, percentile=None, steps=8), 2, 16)
    with pytest.raises(ValueError, match="baseline"):
        integrated_gradients(net, x, baseline="purple")


def test_overlay() -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    heat = np.zeros((8, 8), np.float32)
    heat[:, :4] = 1.0
    heat[0, 0] = np.nan
    out = overlay(img, heat, alpha=0.5)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out[16, 2, 0] > out[16, 2, 2] and out[16, 30, 2] > out[16, 30, 0]  # jet: hot is red, cold is blue
    assert np.array_equal(overlay(img, heat[:1, :1].repeat(32, 0).repeat(32, 1), alpha=0.0), img)
    with pytest.raises(ValueError):
        overlay(img.astype(np.float32), heat)


@pytest.mark.slow
def test_explain_end_to_end(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ckpt = save_checkpoint(Net(ModelSpec(arch="seed-cnn")).eval(), tmp_path / "m")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = tmp_path / f"img{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 48, 3), dtype=np.uint8)).save(p, quality=90)
        paths.append(str(p))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 this is not a jpeg")
    out = tmp_path / "out"
    results = explain([*paths, str(broken)], model=str(ckpt.with_suffix("")), out=str(out), upscale=4)
    assert [r["path"] for r in results] == [*paths, str(broken)]
    for r in results[:3]:
        assert r["error"] is None and r["label"] in ("REAL", "FAKE")
        assert 0.0 <= r["score"] <= 1.0 and 0.5 <= r["confidence"] <= 1.0
        png = Path(r["png"])
        assert png.parent == out and png.exists()
        with Image.open(png) as im:
            assert im.format == "PNG" and im.width > im.height
    assert results[3]["error"] and results[3]["png"] is None
    index = json.loads((out / "explanations.json").read_text())
    assert index == json.loads(json.dumps(results))
    assert sorted(p.name for p in out.iterdir()) == ["explanations.json", "img0.png", "img1.png", "img2.png"]
    with pytest.raises(ValueError, match="unknown explainer"):
        explain(paths, model=str(ckpt), out=str(out), methods=["nope"])
