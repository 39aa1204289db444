"""Crash safety: SIGKILL a training run mid-epoch and a scan mid-way, resume both, compare."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fakescope.io import read_jsonl
from fakescope.models import ModelSpec, Net, load_checkpoint, save_checkpoint
from fakescope.scanning.demo import samples_dir

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fakescope.cli", *args]


def wait_for(pred, timeout: float = 120.0) -> None:  # noqa: ANN001
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def train_args(data: Path, out: Path) -> list[str]:
    return ["train", "--data", str(data), "--arch", "fast", "--width", "8", "--epochs", "3", "--batch-size", "4",
            "--val-fraction", "0.2", "--out", str(out), "--quiet", "--seed", "3"]


@pytest.fixture(scope="module")
def cifake_400(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 images (the samples, copied under new names) so that an epoch takes long enough to be interrupted."""
    root = tmp_path_factory.mktemp("c400")
    for cls in ("REAL", "FAKE"):
        (root / cls).mkdir()
        src = sorted((samples_dir() / cls).glob("*.jpg"))
        for i in range(200):
            shutil.copy(src[i % len(src)], root / cls / f"{i:04d}.jpg")
    return root


def test_training_killed_mid_epoch_resumes_to_the_same_model(cifake_400: Path, tmp_path: Path) -> None:
    cifake_tiny = cifake_400
    env = {**ENV, "FAKESCOPE_CACHE": str(tmp_path / "cache")}
    ref = subprocess.run(cli(*train_args(cifake_tiny, tmp_path / "ref")), env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "killed"
    proc = subprocess.Popen(cli(*train_args(cifake_tiny, run)), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def in_epoch_two() -> bool:
        return any(r.get("kind") == "step" and r["epoch"] >= 2 for r in read_jsonl(run / "history.jsonl"))

    wait_for(in_epoch_two)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "model.json").exists()
    done = json.loads((run / "last.json").read_text())["epoch"]
    assert 1 <= done < 3
    assert len(list(run.glob("state-*.safetensors"))) == 1
    r = subprocess.run(cli(*train_args(cifake_tiny, run), "--resume"), env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    a, _ = load_checkpoint(tmp_path / "ref" / "model.json")
    b, mb = load_checkpoint(run / "model.json")
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), k
    ma = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    assert ma["val_acc"] == mb["metrics"]["val_acc"]


def test_scan_killed_and_resumed_loses_and_repeats_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    src = sorted(samples_dir().glob("*/*.jpg"))
    for i in range(1200):
        shutil.copy(src[i % len(src)], folder / f"{i:05d}.jpg")
    torch.manual_seed(0)
    model = save_checkpoint(Net(ModelSpec(arch="seed-cnn")).eval(), tmp_path / "m")
    out = tmp_path / "out.jsonl"
    args = ["scan", str(folder), "--model", str(model), "--output", str(out), "--json", "--chunk", "20",
            "--workers", "0"]
    proc = subprocess.Popen(cli(*args), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: out.exists() and out.stat().st_size > 0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(read_jsonl(out))
    assert 0 < partial < 1200, "the scan must be interrupted part-way for this test to mean anything"
    r = subprocess.run(cli(*args, "--resume"), env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out)
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 1200
