"""Training under torch.distributed on CPU (gloo, 2 processes spawned here): the same weights as one process with
the same global batch and seed, rank 0 alone writes, a killed rank fails the job and ``--resume`` continues it on
another number of processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from torch import nn

from fakescope.io import read_jsonl
from fakescope.training.distributed import World
from fakescope.training.loop import fit
from tests.helpers.training import tiny_cfg

pytestmark = pytest.mark.slow
TOL = 1e-5  # float32 summation order (gradients averaged over ranks instead of summed in one batch)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tiny_nobn(image_size: int = 32, num_classes: int = 2, in_chans: int = 3) -> nn.Module:
    """No BatchNorm: per-rank batch statistics are the one thing DDP on CPU cannot make equal."""
    return nn.Sequential(nn.Conv2d(in_chans, 6, 3, stride=2), nn.ReLU(), nn.Conv2d(6, 6, 3, stride=2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 1 if num_classes == 2 else num_classes))


def _worker(rank: int, world: int, port: int, cfg: dict[str, object]) -> None:
    """One training process, as torchrun would start it (environment variables, one thread)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), FAKESCOPE_DIST_TIMEOUT="60")
    torch.set_num_threads(1)
    from fakescope.models.registry import MODELS
    from fakescope.training.config import TrainConfig

    if "tiny-nobn" not in MODELS:  # registered in the spawned processes only: the test session never sees it
        MODELS.register("tiny-nobn")(_tiny_nobn)
    fit(TrainConfig(**cfg), quiet=True)  # type: ignore[arg-type]


def _spawn(world: int, cfg: dict[str, object]) -> None:
    mp.spawn(_worker, args=(world, _free_port(), cfg), nprocs=world, join=True)


def _epochs(run: Path) -> list[dict[str, object]]:
    return [r for r in read_jsonl(run / "history.jsonl") if r["kind"] == "epoch"]


def test_two_processes_train_the_weights_of_one(cifake_tiny: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Global batch 8 in one process vs 4 + 4 on two ranks, no random augmentation: the same weights (TOL)."""
    from fakescope.models.registry import MODELS

    base = dict(arch="tiny-nobn", arch_kwargs={}, flip=False, epochs=2, batch_size=8, tta=False)
    one, two = tmp_path / "one", tmp_path / "two"
    for table, value in ((MODELS._factories, _tiny_nobn), (MODELS._docs, ""), (MODELS._tags, frozenset())):
        monkeypatch.setitem(table, "tiny-nobn", value)  # for this test only
    fit(tiny_cfg(one, cifake_tiny, **base), quiet=True)
    _spawn(2, tiny_cfg(two, cifake_tiny, **base).to_dict())
    wa, wb = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert sorted(wa) == sorted(wb)
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=TOL)
    ea, eb = _epochs(one), _epochs(two)
    assert [e["world_size"] for e in ea] == [1, 1] and [e["world_size"] for e in eb] == [2, 2]
    for a, b in zip(ea, eb, strict=True):  # all-reduced step metrics and sharded validation equal one process's
        for k in ("step", "train_loss", "train_acc", "val_loss", "val_acc"):
            assert abs(float(a[k]) - float(b[k])) <= TOL, k
    assert json.loads((two / "config.json").read_text())["world_size"] == 2
    steps = [r for r in read_jsonl(two / "history.jsonl") if r["kind"] == "step"]
    assert [r["step"] for r in steps] == list(range(1, 9))  # one line per step: rank 0 alone writes


def test_a_failing_rank_0_stops_the_other_rank(cifake_tiny: Path, tmp_path: Path) -> None:
    """An existing run without --resume: rank 0 refuses, rank 1 stops at once instead of waiting for it."""
    cfg = tiny_cfg(tmp_path / "run", cifake_tiny, epochs=1)
    fit(cfg, quiet=True)
    t0 = time.monotonic()
    with pytest.raises(mp.ProcessRaisedException, match="already holds a run|rank 0 failed"):
        _spawn(2, cfg.to_dict())
    assert time.monotonic() - t0 < 60


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds torchrun's workers through /proc")
def test_a_killed_rank_fails_the_job_and_resume_continues_on_one_process(cifake_tiny: Path, tmp_path: Path) -> None:
    run, epochs = tmp_path / "run", 60
    args = ["train", "--data", str(cifake_tiny), "--arch", "fast", "--width", "8", "--epochs", str(epochs),
            "--batch-size", "8", "--lr", "0.05", "--val-fraction", "0.2", "--seed", "1", "--out", str(run), "--quiet"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master-addr=127.0.0.1",
           f"--master-port={_free_port()}", "--max-restarts=0", "-m", "fakescope.cli", *args]
    env = {**os.environ, "FAKESCOPE_DIST_TIMEOUT": "60"}
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ((run / "history.jsonl").exists() and _epochs(run)):
            assert job.poll() is None and time.monotonic() < deadline, "the job ended before epoch 1"
            time.sleep(0.02)
        workers = _children(job.pid)
        assert len(workers) == 2, workers
        os.kill(workers[-1], signal.SIGKILL)
        out, _ = job.communicate(timeout=90)  # no hang: torchrun stops the surviving rank
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0, out
    done = json.loads((run / "last.json").read_text())["epoch"]
    assert 1 <= done < epochs and (run / f"state-{done}.safetensors").exists()
    assert not (run / "model.json").exists()
    fit(tiny_cfg(run, cifake_tiny, epochs=epochs, resume=True, log_every=50), quiet=True)  # 1 process now
    hist = _epochs(run)
    assert [e["epoch"] for e in hist] == list(range(1, epochs + 1))
    assert {e["world_size"] for e in hist[:done]} == {2} and {e["world_size"] for e in hist[done:]} == {1}
    assert (run / "model.json").exists() and json.loads((run / "config.json").read_text())["world_size"] == 1


def test_one_process_world_changes_nothing() -> None:
    w = World()
    assert not w.active and w.is_main and w.mean({"loss": 1.5}) == {"loss": 1.5}
    perm = torch.randperm(10)
    assert [b.tolist() for b in w.batch_indices(perm, 4, 2)] == [perm[:4].tolist(), perm[4:8].tolist()]
    two = World(rank=1, size=2)
    assert [b.tolist() for b in two.batch_indices(perm, 4, 2)] == [perm[[1, 3]].tolist(), perm[[5, 7]].tolist()]
    with pytest.raises(ValueError, match="multiple of the 2 processes"):
        two.local_batch(5)


def test_two_processes_train_from_shards(cifake_tiny: Path, tmp_path: Path) -> None:
    from fakescope.data.shards import pack

    pack(cifake_tiny, tmp_path / "shards", shard_images=8)
    run = tmp_path / "run"
    _spawn(2, tiny_cfg(run, tmp_path / "shards", epochs=2).to_dict())
    assert [e["world_size"] for e in _epochs(run)] == [2, 2] and (run / "model.json").exists()
