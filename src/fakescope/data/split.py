"""Deterministic, group-aware splits: images sharing a source group never straddle a split."""

from __future__ import annotations

import numpy as np

from .sources import ImageSet


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
