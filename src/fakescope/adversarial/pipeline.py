"""``fakescope attack``: attack N images of a labelled dataset with a victim checkpoint, for one or more ε."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data import load_dataset
from ..models import load_checkpoint
from .attacks import create_attack, make_manifest, run_attack, write_attack


def attack_dataset(victim: str | os.PathLike[str], data: str, attack: str, eps: list[float | None], n: int,
                   out: str | os.PathLike[str], split: str = "test", seed: int = 0,
                   batch_size: int = 256) -> list[dict[str, Any]]:
    """Attack ``n`` images (seeded, class-stratified) of ``data`` for every ε; one output folder per ε.

    ``data``: class folders (CIFAR-10 layout, ``split`` sub-folder if present) or an ``.npz`` with ``labels``.
    Writes ``originals.npz``, ``attacked.npz`` and ``manifest.json`` under ``out/<attack>[-eps<k>]``.
    """
    net, _meta = load_checkpoint(victim)
    ds = load_dataset(data, "classify", net.spec.image_size, split)
    if len(ds.classes) != len(net.spec.classes):
        raise ValueError(f"{data} has {len(ds.classes)} classes, the victim knows {len(net.spec.classes)}")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(ds))[: min(n, len(ds))])
    images, labels = ds.images[idx], ds.labels[idx]
    results = []
    for e in eps:
        atk = create_attack(attack, net, eps=e)
        adv, stats = run_attack(net, images, labels, atk, batch_size=batch_size, seed=seed)
        tag = attack if atk.eps is None else f"{attack}-eps{round(atk.eps * 255, 3):g}"
        folder = Path(out) / tag
        manifest = make_manifest(atk, stats, seed, victim_net=net, victim_checkpoint=victim)
        manifest["source"] = {"data": str(data), "split": split, "indices": idx.tolist()}
        write_attack(folder, images, adv, labels, manifest)
        results.append({"folder": str(folder), **stats})
    return results
