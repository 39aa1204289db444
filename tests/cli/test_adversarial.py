"""``fakescope attack`` through a subprocess: ε sweep folders, the seed's .npz format, a consistent manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakescope.adversarial import verify_manifest
from fakescope.models import ModelSpec, Net, save_checkpoint

pytestmark = pytest.mark.slow


def test_attack_command(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for c in range(10):
        (tmp_path / "data" / "test" / str(c)).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "data" / "test" /
                                                                                    str(c) / f"{i}.png")
    torch.manual_seed(0)
    victim = save_checkpoint(Net(ModelSpec(arch="seed-cnn", task="classify", classes=[str(i) for i in range(10)])),
                             tmp_path / "victim")
    r = subprocess.run([sys.executable, "-m", "fakescope.cli", "attack", "--victim", str(victim), "--data",
                        str(tmp_path / "data"), "--attack", "fgsm", "--eps", "2", "--eps", "8", "--n", "16",
                        "--out", str(tmp_path / "out")], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "FAKESCOPE_CACHE": str(tmp_path / "c")})
    assert r.returncode == 0, r.stderr
    for eps in (2, 8):
        folder = tmp_path / "out" / f"fgsm-eps{eps}"
        with np.load(folder / "originals.npz") as o, np.load(folder / "attacked.npz") as a:
            assert o["images"].dtype == np.uint8 and o["images"].shape == (16, 32, 32, 3)
            diff = np.abs(o["images"].astype(int) - a["images"].astype(int))
            assert diff.max() <= eps and (o["labels"] == a["labels"]).all()
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["stats"]["n"] == 16
        assert max(verify_manifest(folder).values()) == 0.0
