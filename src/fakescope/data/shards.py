"""Data larger than memory: ``pack`` decodes an image folder once into memory-mapped uint8 ``.npy`` shards, and
``ShardSet`` streams them back, block by block, through a bounded shuffle buffer.

Layout of a shard folder::

    manifest.json                 written last (atomically): classes, image size, counts per class, the source
                                  folder's fingerprint, and per shard its files, image count and SHA-256
    shard-00000.images.npy        (N, H, W, 3) uint8, opened with np.load(mmap_mode="r")
    shard-00000.labels.npy        (N,) int64

Files are shuffled once (``seed``) before packing, so every shard mixes the classes. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..io import atomic_open, sha256_file, write_json
from .decode import fingerprint, iter_decoded
from .imageset import DataError
from .sources import list_class_files

MANIFEST = "manifest.json"
FORMAT = "fakescope-shards/1"
SHARD_BYTES = 256 << 20  # default shard size: 256 MiB of pixels (~87,000 images at 32x32)
BLOCK = 256  # images read contiguously from a shard at a time; blocks are what ranks and epochs shuffle
BUFFER_BYTES = 64 << 20  # the shuffle buffer of each rank (~21,800 images at 32x32)


def is_shard_dir(path: str | os.PathLike[str]) -> bool:
    return bool(path) and (Path(path) / MANIFEST).is_file()


class _ShardWriter:
    """Collects decoded images and writes a shard (two ``.npy`` files, atomically) each time one is full."""

    def __init__(self, out: Path, size: int, per_shard: int, n_classes: int) -> None:
        self.out, self.per_shard, self.n_classes = out, per_shard, n_classes
        self.images = np.empty((per_shard, size, size, 3), np.uint8)
        self.labels = np.empty(per_shard, np.int64)
        self.n = 0
        self.shards: list[dict[str, Any]] = []

    def add(self, image: np.ndarray, label: int) -> None:
        self.images[self.n], self.labels[self.n] = image, label
        self.n += 1
        if self.n == self.per_shard:
            self.flush()

    def flush(self) -> None:
        if not self.n:
            return
        stem = f"shard-{len(self.shards):05d}"
        entry: dict[str, Any] = {"count": self.n}
        for kind, arr in (("images", self.images[:self.n]), ("labels", self.labels[:self.n])):
            path = self.out / f"{stem}.{kind}.npy"
            with atomic_open(path) as fh:
                np.save(fh, arr, allow_pickle=False)
            entry[kind], entry[f"{kind}_sha256"] = path.name, sha256_file(path)
        entry["counts"] = np.bincount(self.labels[:self.n], minlength=self.n_classes).tolist()
        self.shards.append(entry)
        self.n = 0


def pack(source: str | os.PathLike[str], out: str | os.PathLike[str], task: str = "synthetic", size: int = 32,
         split: str = "train", shard_images: int | None = None, workers: int | None = None, seed: int = 0,
         resample: str = "bicubic", progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Decode the image folder ``source`` (in parallel, ``data.decode``) into shards in ``out``; returns the
    manifest. ``shard_images``: images per shard (default: ``SHARD_BYTES`` of pixels). ``progress(done, total)``
    follows the files. Unreadable files are skipped and listed in the
    manifest; ``out`` must not hold shards already."""
    dest = Path(out)
    if is_shard_dir(dest) or any(dest.glob("shard-*.npy")):
        raise FileExistsError(f"{dest} already holds shards; choose another --out or remove it")
    paths, labels, classes = list_class_files(source, task, split)
    fp = fingerprint(paths, size, resample)  # the same as train --data FOLDER records for this folder
    order = np.random.default_rng(seed).permutation(len(paths))
    paths, labels = [paths[i] for i in order], [labels[i] for i in order]
    dest.mkdir(parents=True, exist_ok=True)
    writer = _ShardWriter(dest, size, shard_images or max(1, SHARD_BYTES // (size * size * 3)), len(classes))
    skipped: list[tuple[str, str]] = []
    done = 0
    for start, results in iter_decoded(paths, size, resample, workers):
        for j, (arr, err, *_rest) in enumerate(results):
            if arr is None:
                skipped.append((paths[start + j], str(err)))
            else:
                writer.add(arr, labels[start + j])
        done += len(results)
        if progress is not None:
            progress(done, len(paths))
    writer.flush()
    if skipped:
        warnings.warn(f"{len(skipped)} unreadable file(s) skipped, e.g. {skipped[0][0]}: {skipped[0][1]}",
                      stacklevel=2)
    counts = np.sum([e["counts"] for e in writer.shards], axis=0, dtype=np.int64) if writer.shards else \
        np.zeros(len(classes), np.int64)
    manifest = {"format": FORMAT, "task": task, "classes": classes, "image_size": size, "resample": resample,
                "source": os.path.abspath(source), "split": split, "fingerprint": fp, "order_seed": seed,
                "total": int(counts.sum()), "counts": dict(zip(classes, counts.tolist(), strict=True)),
                "skipped": [list(s) for s in skipped[:100]], "n_skipped": len(skipped), "shards": writer.shards,
                "fakescope": __version__}
    write_json(dest / MANIFEST, manifest)  # the commit record: a pack killed before this line has none
    return manifest


@dataclass
class ShardSet:
    """A packed folder: the manifest, every label in memory, the images memory-mapped one shard at a time."""

    root: Path
    manifest: dict[str, Any]
    labels: np.ndarray  # (N,) int64, all shards in order
    offsets: np.ndarray  # (n_shards + 1,) first global index of each shard

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> ShardSet:
        """Read the manifest and labels and check every shard's shape; a ``DataError`` says what is wrong."""
        r = Path(root)
        if not is_shard_dir(r):
            raise DataError(f"{r}: no {MANIFEST} (not a fakescope pack folder, or the pack did not finish)")
        m = json.loads((r / MANIFEST).read_text(encoding="utf-8"))
        if m.get("format") != FORMAT:
            raise DataError(f"{r / MANIFEST}: format {m.get('format')!r}, expected {FORMAT!r}")
        labels = []
        for e in m["shards"]:
            y = np.load(r / e["labels"], allow_pickle=False)
            x = np.load(r / e["images"], mmap_mode="r", allow_pickle=False)
            size = m["image_size"]
            if x.shape != (e["count"], size, size, 3) or x.dtype != np.uint8 or y.shape != (e["count"],):
                raise DataError(f"{r / e['images']}: shape {x.shape} {x.dtype}, labels {y.shape}; the manifest says "
                                f"{e['count']} images of {size}x{size}x3 uint8 (re-run fakescope pack)")
            labels.append(y.astype(np.int64, copy=False))
        counts = [e["count"] for e in m["shards"]]
        return cls(r, m, np.concatenate(labels) if labels else np.zeros(0, np.int64),
                   np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    def images(self, shard: int) -> np.ndarray:
        """Shard ``shard``'s images, memory-mapped (read-only; pages load when touched)."""
        return np.load(self.root / self.manifest["shards"][shard]["images"], mmap_mode="r", allow_pickle=False)

    def verify(self) -> list[str]:
        """Files whose SHA-256 differs from the manifest (reads every byte)."""
        return [e[k] for e in self.manifest["shards"] for k in ("images", "labels")
                if sha256_file(self.root / e[k]) != e[f"{k}_sha256"]]

    def gather(self, indices: np.ndarray) -> np.ndarray:
        """The images at global ``indices`` (in that order), read shard by shard."""
        out = np.empty((len(indices), *self.images(0).shape[1:]) if len(self) else (0, 0, 0, 3), np.uint8)
        shard_of = np.searchsorted(self.offsets, indices, side="right") - 1
        for s in np.unique(shard_of):
            pick = np.flatnonzero(shard_of == s)
            local = indices[pick] - self.offsets[s]
            order = np.argsort(local)
            out[pick[order]] = self.images(int(s))[local[order]]
        return out

    def blocks(self, block: int = BLOCK) -> list[tuple[int, int, int]]:
        """``(shard, start, stop)`` of every block: the unit read contiguously and shuffled between ranks."""
        return [(s, a, min(a + block, e["count"])) for s, e in enumerate(self.manifest["shards"])
                for a in range(0, e["count"], block)]

    def _share(self, mine: list[tuple[int, int, int]], keep: np.ndarray,
               maps: dict[int, np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One pass over this rank's blocks: the kept images of each, read contiguously."""
        for s, a, b in mine:
            sel = np.flatnonzero(keep[self.offsets[s] + a:self.offsets[s] + b])
            if len(sel):
                if s not in maps:
                    maps[s] = self.images(s)
                yield np.asarray(maps[s][a:b])[sel], self.labels[self.offsets[s] + a + sel]

    def stream(self, keep: np.ndarray, seed: int, rank: int, world: int, batch: int, steps: int,
               buffer_bytes: int = BUFFER_BYTES, block: int = BLOCK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``steps`` batches of ``batch`` (images, labels) for ``rank`` of ``world``, drawn from the images where
        ``keep`` (a global bool mask) is true.

        The blocks are permuted by ``seed`` and strided by rank (each rank reads ~1/world of the data, other blocks
        every epoch); each rank samples its batches at random from a buffer of ``buffer_bytes`` of images (at least
        two batches) that it refills block by block, and empties once its share is read. A rank whose share is
        shorter than ``steps`` batches (blocks do not split evenly) starts its share again for the last few, after
        every image of the share was used once.
        """
        rng = np.random.default_rng(seed)
        blocks = self.blocks(block)
        mine = [blocks[i] for i in rng.permutation(len(blocks))[rank::world]]
        shape = tuple(self.images(0).shape[1:]) if len(self) else (1, 1, 3)
        pool = _Pool(max(2 * batch, buffer_bytes // int(np.prod(shape))), block, shape, rng)
        maps: dict[int, np.ndarray] = {}
        share = self._share(mine, keep, maps)
        for _ in range(steps):
            while pool.n < pool.capacity and (got := next(share, None)) is not None:
                pool.add(*got)
            if pool.n >= batch:
                yield pool.take(batch)
                continue
            # this rank's share is used up: its last images go into this batch, the rest starts the share again
            rest = pool.take(pool.n)
            share = self._share(mine, keep, maps)
            while pool.n < pool.capacity and (got := next(share, None)) is not None:
                pool.add(*got)
            if pool.n < batch - len(rest[0]):
                raise DataError(f"rank {rank} of {world}: fewer than {batch} training images in its blocks")
            more = pool.take(batch - len(rest[0]))
            yield np.concatenate([rest[0], more[0]]), np.concatenate([rest[1], more[1]])


class _Pool:
    """A shuffle buffer of fixed capacity: random batches out, blocks in; removal moves the tail into the holes."""

    def __init__(self, capacity: int, block: int, shape: tuple[int, ...], rng: np.random.Generator) -> None:
        self.capacity, self.rng, self.n = capacity, rng, 0
        self.x = np.empty((capacity + block, *shape), np.uint8)  # room for one block past capacity
        self.y = np.empty(capacity + block, np.int64)

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x[self.n:self.n + len(x)], self.y[self.n:self.n + len(x)] = x, y
        self.n += len(x)

    def take(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        pick = self.rng.choice(self.n, k, replace=False)
        x, y = self.x[pick], self.y[pick]
        tail = np.arange(self.n - k, self.n)
        holes = np.setdiff1d(pick, tail, assume_unique=True)
        movers = np.setdiff1d(tail, pick, assume_unique=True)
        self.x[holes], self.y[holes] = self.x[movers], self.y[movers]
        self.n -= k
        return x, y
