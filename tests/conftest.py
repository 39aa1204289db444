"""Shared fixtures: tiny datasets built from the committed samples, isolated caches, one thread."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from fakescope.scanning.demo import samples_dir

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKESCOPE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def cifake_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CIFAKE layout from the 60 bundled samples: 20 + 20 train, 10 + 10 test per class."""
    root = tmp_path_factory.mktemp("cifake")
    for cls in ("REAL", "FAKE"):
        files = sorted((samples_dir() / cls).glob("*.jpg"))
        for i, f in enumerate(files):
            split = "test" if i % 3 == 0 else "train"
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, root / split / cls / f.name)
    return root
