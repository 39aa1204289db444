"""``fit`` under torchrun: DistributedDataParallel over torch.distributed (gloo on CPU, NCCL on CUDA).

``fakescope train`` is unchanged under ``torchrun --nproc_per_node=N -m fakescope.cli train ...``: when
``WORLD_SIZE`` > 1, ``session`` joins the process group torchrun set up, and every rank trains a replica:

* **Batch**: ``--batch-size`` is the *global* batch; each rank takes ``batch_size / world_size`` images per step,
  so steps per epoch, the learning-rate schedule and the global step mean the same at any world size.
* **Data**: each epoch's permutation is drawn from ``(seed, epoch)`` exactly as in a single process, then strided
  by rank (``perm[rank::world_size]``); the union of the ranks' step-``i`` batches is the single process's step-``i``
  batch. Augmentation draws from a per-rank generator of ``(seed, epoch, rank)``.
* **Metrics**: each step's loss and accuracy are averaged over ranks; validation is split by rank and summed.
* **Writes**: rank 0 alone writes ``config.json`` (with ``world_size``), ``history.jsonl``, the training state,
  the checkpoint and plots, all atomically (``fakescope.io``); the saved state is world-size independent, so a run
  resumes on any number of processes.
* **BatchNorm**: each rank normalises with its own batch's statistics (torch's ``SyncBatchNorm`` runs on GPUs
  only); running statistics are rank 0's (DDP broadcasts buffers). See ``docs/scale-out.md`` for the tolerance.

A rank that dies makes the others fail instead of hanging: torchrun stops the job, and every collective has the
process group's timeout (``FAKESCOPE_DIST_TIMEOUT`` seconds, default 1800).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..data import ImageSet

TIMEOUT_ENV = "FAKESCOPE_DIST_TIMEOUT"


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (``rank`` 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collectives run (the training device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def _flag(self, value: float) -> float:
        """Broadcast one number from rank 0 (its ``value``) to every rank."""
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return float(t.item())

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first, then the others (e.g. rank 0 fills the decode cache, the others read it).
        If it fails on rank 0, the other ranks raise at once instead of waiting for it."""
        if not self.active:
            yield
            return
        if self.is_main:
            try:
                yield
            except BaseException:
                self._flag(0.0)
                raise
            self._flag(1.0)
        else:
            if self._flag(0.0) != 1.0:
                raise RuntimeError("rank 0 failed (its error says why); stopping this rank too")
            yield

    def mean(self, metrics: dict[str, float]) -> dict[str, float]:
        """``metrics`` averaged over the ranks (each rank's batch has the same size); as is in one process."""
        if not self.active:
            return metrics
        keys = sorted(metrics)
        t = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.size for k, v in zip(keys, t.tolist(), strict=True)}

    def same_everywhere(self, values: tuple[int, ...], what: str) -> None:
        """A ``RuntimeError`` on every rank unless all ranks hold the same ``values``."""
        if not self.active:
            return
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        lo, hi = t.clone(), t.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        if not torch.equal(lo, hi):
            raise RuntimeError(f"ranks disagree on {what}: {lo.tolist()} .. {hi.tolist()} (is the run folder on a "
                               "file system every node sees?)")

    def share(self, metrics: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any]:
        """Rank 0's numeric ``metrics`` on every rank (the others pass ``None``)."""
        if not self.active:
            return metrics or {}
        t = torch.tensor([float(metrics[k]) if metrics else 0.0 for k in keys], dtype=torch.float64,
                         device=self.device)
        dist.broadcast(t, src=0)
        return metrics if metrics else dict(zip(keys, t.tolist(), strict=True))

    def batch_indices(self, perm: torch.Tensor, batch_size: int, n_steps: int) -> Iterator[torch.Tensor]:
        """This rank's indices for each of ``n_steps`` global batches of ``batch_size`` taken in ``perm`` order."""
        if not self.active:
            yield from (perm[i * batch_size:(i + 1) * batch_size] for i in range(n_steps))
            return
        share, b = perm[self.rank::self.size], self.local_batch(batch_size)
        yield from (share[i * b:(i + 1) * b] for i in range(n_steps))

    def local_batch(self, batch_size: int) -> int:
        """Images per step on this rank: the global ``batch_size`` split evenly over the ranks."""
        if batch_size % self.size:
            raise ValueError(f"--batch-size {batch_size} is the global batch: it must be a multiple of the "
                             f"{self.size} processes (each rank takes batch-size / world size)")
        return batch_size // self.size

    def augment_generator(self, gen: torch.Generator, seed: int, epoch: int) -> torch.Generator:
        """The generator augmentations draw from: ``gen`` itself in one process, else one per (seed, epoch, rank)."""
        if not self.active:
            return gen
        state = np.random.SeedSequence([seed, epoch, self.rank]).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(state))

    def evaluate(self, evaluate_split: Callable[..., dict[str, Any]], net: nn.Module,
                 val: ImageSet) -> dict[str, Any]:
        """Validation loss and accuracy: the whole set in one process, else each rank its ``val[rank::size]``,
        summed over ranks (no logits then)."""
        if not self.active:
            return evaluate_split(net, val)
        part = val.subset(np.arange(self.rank, len(val), self.size))
        ev = evaluate_split(net, part) if len(part) else {"loss": 0.0, "acc": 0.0}
        t = torch.tensor([ev["loss"] * len(part), ev["acc"] * len(part), len(part)], dtype=torch.float64,
                         device=self.device)
        dist.all_reduce(t)
        return {"loss": float(t[0] / t[2]), "acc": float(t[1] / t[2])}

    def replicate(self, net: nn.Module) -> nn.Module:
        """What ``run_epoch`` trains: ``net`` itself in one process, else ``net`` behind DDP."""
        return Replica(net, self.device) if self.active else net


class _Logits(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.logits(x)


class Replica(nn.Module):
    """``net.logits`` through ``DistributedDataParallel`` (gradients all-reduced in backward); same parameters."""

    def __init__(self, net: nn.Module, device: torch.device) -> None:
        super().__init__()
        ids = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else None
        self.ddp = nn.parallel.DistributedDataParallel(_Logits(net), device_ids=ids)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.ddp(x)


def world_from_env() -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` from torchrun's environment variables (0, 1, 0 without them)."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


def timeout() -> timedelta:
    return timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "1800")))


@contextmanager
def session(device: torch.device) -> Iterator[World]:
    """The ``World`` of this process; with ``WORLD_SIZE`` > 1 joins torchrun's process group (gloo on CPU, NCCL on
    CUDA, one GPU per local rank) for the block and leaves it afterwards. A group the caller already initialised
    is used as is and left to the caller."""
    rank, size, local = world_from_env()
    if size <= 1:
        yield World(device=device)
        return
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout())
    try:
        yield World(dist.get_rank(), dist.get_world_size(), local, device)
        if owned:  # every rank leaves its last collective before any tears gloo down (else: a rare SIGABRT,
            dist.barrier()  # "terminate called without an active exception", seen once in CI under load)
    finally:
        if owned:
            dist.destroy_process_group()
