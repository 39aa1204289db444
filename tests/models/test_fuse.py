"""BatchNorm folding: the same function, every Conv/Linear -> BatchNorm pair folded, nothing else touched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fakescope.models import ModelSpec, Net, list_models
from fakescope.models.fuse import foldable_pairs, fuse_for_inference


def _random_bn_net(arch: str) -> Net:
    torch.manual_seed(0)
    net = Net(ModelSpec(arch=arch))
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize("arch", list_models())
def test_fused_net_is_the_same_function_without_batchnorm(arch: str) -> None:
    net = _random_bn_net(arch)
    pairs = foldable_pairs(net)
    fused = fuse_for_inference(net)
    assert pairs and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    for layer, bn in pairs:
        assert isinstance(fused.get_submodule(bn), nn.Identity)
        assert type(fused.get_submodule(layer)) is type(net.get_submodule(layer))
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(fused.logits(x), net.logits(x), atol=1e-4, rtol=1e-4)
    assert fused.layer_name("features") == net.layer_name("features")  # declared names still resolve
    fused.layer("features")
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())  # the original is untouched


def test_only_adjacent_matching_pairs_are_folded() -> None:
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.BatchNorm2d(4),
                        nn.Flatten(), nn.Linear(16, 5), nn.BatchNorm1d(5))
    assert foldable_pairs(seq) == [("0", "1"), ("6", "7")]
    nested = nn.Sequential(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)), nn.BatchNorm1d(3))
    assert foldable_pairs(nested) == [("0.0", "0.1")]
