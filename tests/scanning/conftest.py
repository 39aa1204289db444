"""Fixtures shared by the scanning tests."""

from __future__ import annotations

import pytest
import torch

from fakescope.models import ModelSpec, Net, save_checkpoint


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny seed-cnn checkpoint with seeded random weights (scores depend only on the weights, not on training)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny"
    save_checkpoint(Net(ModelSpec(arch="seed-cnn", threshold=0.5)).eval(), path)
    return str(path) + ".json"
