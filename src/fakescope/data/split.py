"""Deterministic, group-aware splits: images sharing a source group never straddle a split."""

from __future__ import annotations

import numpy as np

from .sources import ImageSet


def train_val_split(ds: ImageSet, val_fraction: float = 0.05, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Carve a stratified validation set from ``ds`` by source group (seeded, reproducible)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must be in (0, 1)")
    rng = np.random.default_rng(seed)
    val_groups: list[np.ndarray] = []
    for lab in np.unique(ds.labels):
        groups = np.unique(ds.groups[ds.labels == lab])
        rng.shuffle(groups)
        val_groups.append(groups[: max(1, int(round(len(groups) * val_fraction)))])
    in_val = np.isin(ds.groups, np.concatenate(val_groups))
    return ds.subset(np.flatnonzero(~in_val)), ds.subset(np.flatnonzero(in_val))
