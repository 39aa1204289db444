"""What each rank trains on, batch by batch: the in-memory uint8 tensors of an ``ImageSet``, or packed shards
(``fakescope pack``) streamed from disk so that no rank ever holds the whole set.

Both give ``epoch(gen, batch_size, n_steps)``: this rank's ``n_steps`` batches of epoch ``gen`` (the generator
seeded from the run's seed and the epoch). In memory the epoch's permutation is ``randperm(gen)``, strided by rank
(``World.batch_indices``); from shards the blocks are permuted by a seed drawn from ``gen`` and strided by rank, and
each rank shuffles within its bounded buffer (``data.shards.ShardSet.stream``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data import ImageSet
from ..data.imageset import DataError, check_balance, subsample_per_class, train_val_split
from ..data.shards import ShardSet, is_shard_dir
from .config import TrainConfig, validation_seed
from .distributed import World

Batch = tuple[torch.Tensor, torch.Tensor]


class TensorBatches:
    """The training images as one uint8 NCHW channels_last tensor on the device (and the labels)."""

    def __init__(self, train: ImageSet, device: torch.device, world: World) -> None:
        self.x = torch.from_numpy(train.images).permute(0, 3, 1, 2).to(device).contiguous(
            memory_format=torch.channels_last)
        self.y = torch.from_numpy(train.labels).to(device)
        self.device, self.world = device, world

    def epoch(self, gen: torch.Generator, batch_size: int, n_steps: int) -> Iterator[Batch]:
        perm = torch.randperm(len(self.y), generator=gen).to(self.device)
        for idx in self.world.batch_indices(perm, batch_size, n_steps):
            yield self.x[idx], self.y[idx]


@dataclass
class ShardTrain:
    """The training images of a shard folder: a mask over its global indices (validation is held out)."""

    shards: ShardSet
    keep: np.ndarray  # (N,) bool

    def __len__(self) -> int:
        return int(self.keep.sum())

    @property
    def labels(self) -> np.ndarray:
        """The training labels (what a run's split digest covers), without reading any image."""
        return self.shards.labels[self.keep]

    def counts(self) -> dict[str, int]:
        return dict(zip(self.shards.classes, np.bincount(self.shards.labels[self.keep],
                                                         minlength=len(self.shards.classes)).tolist(), strict=True))


class ShardBatches:
    """Batches streamed from memory-mapped shards, this rank's blocks only, moved to the device as they come."""

    def __init__(self, train: ShardTrain, device: torch.device, world: World) -> None:
        self.train, self.device, self.world = train, device, world

    def epoch(self, gen: torch.Generator, batch_size: int, n_steps: int) -> Iterator[Batch]:
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        for x, y in self.train.shards.stream(self.train.keep, seed, self.world.rank, self.world.size,
                                             self.world.local_batch(batch_size), n_steps):
            yield torch.from_numpy(x).permute(0, 3, 1, 2).to(self.device), torch.from_numpy(y).to(self.device)


def is_shards(cfg: TrainConfig, dataset: ImageSet | None) -> bool:
    """True when ``cfg.data`` is a ``fakescope pack`` folder (and no in-memory ``dataset`` was given)."""
    return dataset is None and is_shard_dir(cfg.data)


def load_shards(cfg: TrainConfig) -> tuple[ImageSet, ShardTrain, ImageSet]:
    """``(labels-only ImageSet of the whole set, the training part, the validation images in memory)``: the same
    per-class limit and seeded, stratified validation split as a folder gets, drawn over the labels alone."""
    ss = ShardSet.open(cfg.data)
    m = ss.manifest
    if m["image_size"] != cfg.image_size:
        raise DataError(f"{cfg.data} was packed at {m['image_size']}x{m['image_size']}; train with --image-size "
                        f"{m['image_size']} or pack again with --image-size {cfg.image_size}")
    if m["task"] != cfg.task:
        raise DataError(f"{cfg.data} was packed for task {m['task']!r}, not {cfg.task!r}")
    n = len(ss)
    whole = ImageSet(np.zeros((n, 1, 1, 3), np.uint8), ss.labels, ss.classes, groups=np.arange(n, dtype=np.int64),
                     fingerprint=m["fingerprint"])  # groups = global indices, carried through subsets
    ds = subsample_per_class(whole, cfg.train_limit, cfg.seed)
    check_balance(ds)
    tr, va = train_val_split(ds, cfg.val_fraction, validation_seed(cfg.to_dict()))
    if len(tr) < cfg.batch_size:
        raise ValueError(f"batch size {cfg.batch_size} exceeds the {len(tr)} training images")
    keep = np.zeros(n, bool)
    keep[tr.groups] = True
    val = ImageSet(ss.gather(va.groups), va.labels, ss.classes, fingerprint=m["fingerprint"])
    ds.fingerprint = m["fingerprint"]
    return ds, ShardTrain(ss, keep), val


def batches(train: Any, device: torch.device, world: World) -> TensorBatches | ShardBatches:
    """The batch source for ``train`` (an ``ImageSet`` in memory, or a ``ShardTrain``)."""
    return ShardBatches(train, device, world) if isinstance(train, ShardTrain) else TensorBatches(train, device, world)
