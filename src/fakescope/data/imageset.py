"""``ImageSet`` (uint8 NHWC images, labels, CIFAR class, paths, source groups), ``DataError``, and the
deterministic, group-aware splits and subsets of one."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np


class DataError(ValueError):
    """A dataset is unusable; the message says what to fix."""


@dataclass
class ImageSet:
    """uint8 NHWC RGB images with integer labels, optional CIFAR-10 class (-1 = unknown) and source paths."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    cifar_class: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    paths: list[str] = field(default_factory=list)
    groups: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    fingerprint: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.cifar_class.size == 0:
            self.cifar_class = np.full(n, -1, np.int64)
        if self.groups.size == 0:
            self.groups = np.arange(n, dtype=np.int64)  # each image its own source group

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx: np.ndarray) -> ImageSet:
        return ImageSet(
            self.images[idx], self.labels[idx], self.classes, self.cifar_class[idx],
            [self.paths[i] for i in idx] if self.paths else [], self.groups[idx], self.fingerprint,
        )

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.classes)}


def check_balance(ds: ImageSet, max_ratio: float = 1.5) -> None:
    """Error on empty classes; warn on imbalance beyond ``max_ratio``."""
    counts = ds.counts()
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise DataError(f"class(es) {empty} have no images (counts: {counts})")
    hi, lo = max(counts.values()), min(counts.values())
    if hi / lo > max_ratio:
        warnings.warn(f"class imbalance {hi / lo:.2f}:1 ({counts}); accuracy will be misleading, "
                      "read balanced metrics (ROC-AUC, F1)", stacklevel=2)


def train_val_split(ds: ImageSet, val_fraction: float = 0.05, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Carve a validation set from ``ds`` by source group, stratified by each group's labels (seeded).

    An original and its attacked copy share a group, so they always land on the same side.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must be in (0, 1)")
    order = np.argsort(ds.groups, kind="stable")
    g_sorted = ds.groups[order]
    uniq, starts = np.unique(g_sorted, return_index=True)
    lab = ds.labels[order]
    lo, hi = np.minimum.reduceat(lab, starts), np.maximum.reduceat(lab, starts)
    strata = lo * (lab.max(initial=0) + 1) + hi  # groups with the same (min, max) label form a stratum
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    for s in np.unique(strata):
        groups = uniq[strata == s]
        rng.shuffle(groups)
        chosen.append(groups[: max(1, int(round(len(groups) * val_fraction)))])
    in_val = np.isin(ds.groups, np.concatenate(chosen))
    return ds.subset(np.flatnonzero(~in_val)), ds.subset(np.flatnonzero(in_val))


def per_class_choice(labels: np.ndarray, n_classes: int, per_class: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``per_class`` items of each class, drawn with ``seed`` (``None`` or 0: all).

    The one seeded choice of ``--train-limit``: ``subsample_per_class`` applies it to an ``ImageSet``, and a
    folder source to its file list before decoding (so only the chosen files are decoded)."""
    labels = np.asarray(labels)
    if not per_class:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed + 7)
    idx = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(n_classes)]
    return np.sort(np.concatenate(idx)) if idx else np.zeros(0, np.int64)


def subsample_per_class(ds: ImageSet, per_class: int | None, seed: int = 0) -> ImageSet:
    """At most ``per_class`` images of each class, drawn with ``seed`` (``None`` or 0: the whole set)."""
    if not per_class:
        return ds
    return ds.subset(per_class_choice(ds.labels, len(ds.classes), per_class, seed))
