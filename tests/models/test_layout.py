"""Layer plans: one description that the torch body is built from, the same kinds both builders know, and the
named layers every architecture declares."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from fakescope.models import MODELS, ModelSpec, Net, archs, list_models
from fakescope.models.layout import KINDS, PLANS, Step, plan_for

# The torch module class each kind builds at its index (the Sequential entry itself).
MODULE_TYPES = {"cbg": nn.Sequential, "res": archs.Residual, "conv": nn.Conv2d, "relu": nn.ReLU,
                "pool": nn.MaxPool2d, "flatten": nn.Flatten, "linear": nn.Linear, "bn1d": nn.BatchNorm1d,
                "head": archs.Head}


def test_torch_builder_knows_every_kind() -> None:
    assert set(archs.MODULES) == set(KINDS) == set(MODULE_TYPES)


@pytest.mark.parametrize("kwargs", [{}, {"width": 8, "num_classes": 10, "image_size": 20}])
@pytest.mark.parametrize("arch", sorted(PLANS))
def test_body_is_built_from_the_plan(arch: str, kwargs: dict) -> None:
    kw = dict(kwargs)
    if arch == "seed-cnn":
        kw.pop("width", None)
    plan = plan_for(arch, **kw)
    body = MODELS.create(arch, **kw)
    assert len(body) == len(plan.steps)
    for module, step in zip(body, plan.steps, strict=True):
        assert type(module) is MODULE_TYPES[step.kind]
    assert body.layer_names == plan.layer_names
    x = torch.zeros(2, 3, kw.get("image_size", 32), kw.get("image_size", 32))
    assert body.eval()(x).shape == (2, plan.out_features)
    assert plan.out_features == (10 if kw.get("num_classes") == 10 else 1)


def test_plan_options_reach_the_torch_modules() -> None:
    body = MODELS.create("seed-cnn")
    assert (body[8].eps, body[8].momentum) == (1e-3, 0.01)  # Keras BatchNorm defaults, declared in the plan
    assert body[0].padding == (0, 0) and body[0].bias is not None
    fast = MODELS.create("fast", width=4)
    conv, bn = fast[0][0], fast[0][1]
    assert conv.padding == (1, 1) and conv.bias is None and bn.eps == 1e-5 and conv.out_channels == 4


def test_invalid_steps_and_plans_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown layer kind"):
        Step("dropout", 3, 3)
    with pytest.raises(ValueError, match="keeps its channel count"):
        Step("res", 8, 16)
    with pytest.raises(ValueError, match="no layer plan"):
        plan_for("srm-cnn")
    with pytest.raises(ValueError, match="image_size >= 6"):
        plan_for("seed-cnn", image_size=5)
    with pytest.raises(TypeError):
        plan_for("fast", depth=3)


def test_layout_imports_no_torch() -> None:
    code = "import sys, fakescope.models.layout\nassert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("arch", list_models())
def test_every_architecture_declares_features(arch: str) -> None:
    """``features`` is a module in the forward pass whose output is an NCHW feature map (Grad-CAM's layer)."""
    net = Net(ModelSpec(arch=arch)).eval()
    layer = net.layer("features")
    assert net.get_submodule(net.layer_name("features")) is layer
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        net(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    finally:
        handle.remove()
    assert seen and seen[-1].dim() == 4 and seen[-1].shape[0] == 2


@pytest.mark.parametrize("arch", list_models())
def test_plain_classifiers_declare_their_classifier(arch: str) -> None:
    """Non-composite architectures: ``classifier`` is the Linear layer whose output IS the body's logits."""
    net = Net(ModelSpec(arch=arch)).eval()
    if MODELS.has_tag(arch, "composite"):
        with pytest.raises(ValueError, match="declares no 'classifier'"):
            net.layer("classifier")
        return
    layer = net.layer("classifier")
    assert isinstance(layer, nn.Linear)
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.no_grad():
            out = net(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    finally:
        handle.remove()
    assert torch.equal(seen[-1], out)
