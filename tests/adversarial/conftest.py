"""Fixtures shared by the adversarial tests: the tiny trained victim (one per test module) and its checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakescope.models import Net, save_checkpoint
from tests.helpers.adversarial import tiny_victim


@pytest.fixture(scope="module")
def victim() -> Net:
    return tiny_victim()


@pytest.fixture(scope="module")
def victim_ckpt(victim: Net, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(victim, tmp_path_factory.mktemp("victim") / "victim")
