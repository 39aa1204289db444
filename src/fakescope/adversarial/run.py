"""``fakescope attack``: attack N images of a labelled dataset with a victim checkpoint, for one or more ε."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data import load_dataset
from ..models import load_checkpoint
from .attacks.base import create_attack, run_attack
from .manifest import make_manifest, write_attack


def attack_dataset(victim: str | os.PathLike[str], data: str, attack: str, eps: list[float | None], n: int,
                   out: str | os.PathLike[str], split: str = "test", seed: int = 0,
                   batch_size: int = 256, exclude: list[str] | None = None,
                   params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Attack ``n`` images (seeded, class-stratified) of ``data`` for every ε; one output folder per ε.

    ``data``: class folders (CIFAR-10 layout, ``split`` sub-folder if present) or an ``.npz`` with ``labels``.
    Writes ``originals.npz``, ``attacked.npz`` and ``manifest.json`` under ``out/<attack>[-eps<k>]``.
    ``exclude``: attack folders (searched recursively for ``manifest.json``) whose source indices of the same
    split are left out, e.g. to build a calibration set disjoint from a test set (the data path is not compared:
    it depends on the folder the attack ran from). ``params``: the
    attack's own options (e.g. ``{"nb_candidates": 10}``), recorded in the manifest like every parameter.
    """
    net, _meta = load_checkpoint(victim)
    ds = load_dataset(data, "classify", net.spec.image_size, split)
    if len(ds.classes) != len(net.spec.classes):
        raise ValueError(f"{data} has {len(ds.classes)} classes, the victim knows {len(net.spec.classes)}")
    used = used_sources(exclude or [], split)
    pool = np.setdiff1d(np.arange(len(ds)), np.fromiter(used, np.int64, len(used)))
    if not len(pool):
        raise ValueError(f"every image of {data} ({split}) is used by the excluded attack folders")
    rng = np.random.default_rng(seed)
    idx = np.sort(pool[rng.permutation(len(pool))[: min(n, len(pool))]])
    images, labels = ds.images[idx], ds.labels[idx]
    results = []
    for e in eps:
        try:
            atk = create_attack(attack, net, eps=e, **(params or {}))
        except TypeError as err:  # an option the attack does not have
            raise ValueError(f"attack {attack!r}: {err}") from None
        adv, stats = run_attack(net, images, labels, atk, batch_size=batch_size, seed=seed)
        tag = attack if atk.eps is None else f"{attack}-eps{round(atk.eps * 255, 3):g}"
        folder = Path(out) / tag
        manifest = make_manifest(atk, stats, seed, victim_net=net, victim_checkpoint=victim)
        manifest["source"] = {"data": str(data), "split": split, "indices": idx.tolist()}
        write_attack(folder, images, adv, labels, manifest)
        results.append({"folder": str(folder), **stats})
    return results


def used_sources(folders: list[str], split: str) -> set[int]:
    """Source indices recorded in the manifests under ``folders`` for ``split`` (an unreadable one is an error)."""
    used: set[int] = set()
    for f in folders:
        manifests = sorted(Path(f).rglob("manifest.json"))
        if not manifests:
            raise FileNotFoundError(f"--exclude {f}: no manifest.json found (not an attack folder)")
        for m in manifests:
            try:
                src = json.loads(m.read_text(encoding="utf-8")).get("source") or {}
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{m}: unreadable manifest ({e})") from None
            if src.get("split") == split:
                used.update(int(i) for i in src.get("indices") or [])
    return used


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["nb_candidates=10", "precision=fp32"]`` → ``{"nb_candidates": 10, "precision": "fp32"}`` (JSON values)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--param {item!r}: expected NAME=VALUE, e.g. nb_candidates=10")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw  # a bare word, e.g. precision=fp32
    return out
