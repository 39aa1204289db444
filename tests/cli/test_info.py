"""``fakescope models`` lines up its columns; ``fakescope info`` tells the training config, data fingerprint,
hashes and parameter count of a checkpoint (without torch: see test_help)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fakescope.cli.info import columns, list_all
from fakescope.cli.main import main
from fakescope.io import sha256_file
from fakescope.models import MODELS, CheckpointError, list_bundled, load_checkpoint, resolve
from fakescope.models.registry import builtin_architectures


def test_columns_are_as_wide_as_their_widest_cell() -> None:
    assert columns([["a", "bb", "c"], ["aaa", "b", "cc"]]) == ["  a    bb  c", "  aaa  b   cc"]


def test_models_lists_every_architecture_and_checkpoint_aligned() -> None:
    lines = list_all().splitlines()
    table = lines[lines.index("bundled checkpoints:") + 1:]
    assert table[0].split() == ["name", "arch", "task", "test", "accuracy"]
    assert [row.split()[0] for row in table[1:]] == list_bundled()
    starts = {row.index(row.split()[1], len(row.split()[0])) for row in table}  # the arch column starts once
    assert len(starts) == 1
    assert builtin_architectures() == {n: MODELS.describe(n) for n in MODELS.names()}


def test_info_shows_config_fingerprint_hashes_and_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "fast"]) == 0
    info = json.loads(capsys.readouterr().out)
    net, doc = load_checkpoint("fast")
    assert info["train_config"] == doc["train_config"] and info["train_config"]["epochs"] > 0
    assert info["data_fingerprint"] == doc["data_fingerprint"] and len(info["data_fingerprint"]) == 64
    assert info["weights_sha256"] == sha256_file(resolve("fast").with_suffix(".safetensors"))
    assert info["json_sha256"] == sha256_file(resolve("fast"))
    assert info["parameters"] == sum(p.numel() for p in net.parameters())  # unfused, as trained
    assert (info["task"], info["image_size"], info["bundled"]) == ("synthetic", 32, True)


def test_info_refuses_tampered_weights(tmp_path: Path) -> None:
    from fakescope.models import ModelSpec, Net, save_checkpoint
    from fakescope.models.checkpoint import describe_checkpoint

    torch.manual_seed(0)
    path = save_checkpoint(Net(ModelSpec(arch="seed-cnn")), tmp_path / "m")
    assert describe_checkpoint(path)["bundled"] is False
    w = tmp_path / "m.safetensors"
    w.write_bytes(w.read_bytes()[:-4] + b"\x00\x00\x00\x01")
    with pytest.raises(CheckpointError, match="SHA-256"):
        describe_checkpoint(path)
