"""Attack folders (written by ``fakescope attack`` / ``write_attack``) → one paired clean/attacked ``ImageSet``.

Accepted by ``load_dataset(source, task="adversarial")``:

- one attack folder: ``originals.npz`` + ``attacked.npz`` (uint8 NHWC ``images``, optional victim ``labels``),
  ``manifest.json`` optional (the seed notebook's two ``.npz`` files need none; rows pair by index);
- a folder whose direct sub-folders are attack folders (``out/fgsm-eps2``, ``out/pgd-eps8``...), combined;
- either of these under a ``train``/``test`` sub-folder, picked by ``split``.

Labels: originals 0 (clean), attacked copies 1. Groups: an original and ALL its attacked copies share one group,
keyed by ``(source data, source split, source index)`` from ``manifest["source"]`` when recorded, else by
``(folder, row)``; byte-identical originals are merged into one group as well, so a pair never straddles a
group-aware split even when two folders spell the same source differently.

Choices: when several folders attacked the same originals, each folder's copy of the original is KEPT (same
group, same bytes), so classes stay 1:1 and every attacked image has its clean twin beside it. Pairs whose
attacked image equals its original (minimum-norm attacks skip images the victim already gets wrong) are
dropped: the same bytes cannot be both clean and attacked.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..io import sha256_file
from .arrays import read_npz_or_fail
from .imageset import DataError, ImageSet

PAIR_FILES = ("originals.npz", "attacked.npz")


def is_attack_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds ``originals.npz`` and ``attacked.npz``."""
    p = Path(path)
    return all((p / f).is_file() for f in PAIR_FILES)


def find_attack_dirs(root: str | os.PathLike[str], split: str = "train") -> list[Path]:
    """The attack folders ``root`` stands for (itself, ``root/split``, or its direct sub-folders); [] if none."""
    r = Path(root)
    if not r.is_dir():
        return []
    if is_attack_dir(r):
        return [r]
    if (r / split).is_dir():
        found = find_attack_dirs(r / split, split)
        if found:
            return found
    return sorted(d for d in r.iterdir() if d.is_dir() and not d.name.startswith(".") and is_attack_dir(d))


def read_attack_dir(folder: str | os.PathLike[str], size: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(originals, attacked, victim labels or -1, manifest or {}) of one attack folder, checked.

    File hashes recorded in the manifest are verified; ``size`` (if given) must match the stored images.
    """
    d = Path(folder)
    manifest: dict[str, Any] = {}
    if (d / "manifest.json").is_file():
        try:
            manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"{d / 'manifest.json'}: unreadable ({e})") from None
        for name, digest in (manifest.get("files") or {}).items():
            if name in PAIR_FILES and sha256_file(d / name) != digest:
                raise DataError(f"{d / name}: SHA-256 differs from manifest.json (modified after it was written)")
    (orig, lo), (adv, la) = ((a.images, a.labels) for a in (read_npz_or_fail(d / f) for f in PAIR_FILES))
    if orig.shape != adv.shape:
        raise DataError(f"{d}: originals {orig.shape} and attacked {adv.shape} differ; rows must pair one to one")
    if size is not None and orig.shape[1:3] != (size, size):
        raise DataError(f"{d}: images are {orig.shape[1]}x{orig.shape[2]}, the model takes {size}x{size}; pass "
                        f"--image-size {orig.shape[1]} (resizing would blur the adversarial noise away)")
    labels = lo if lo is not None else la
    if labels is None or len(labels) != len(orig):
        labels = np.full(len(orig), -1, np.int64)
    return orig, adv, labels, manifest


class _Groups:
    """Union-find over hashable keys → compact integer group ids."""

    def __init__(self) -> None:
        self.ids: dict[Any, int] = {}
        self.parent: list[int] = []

    def id(self, key: Any) -> int:
        if key not in self.ids:
            self.ids[key] = len(self.parent)
            self.parent.append(len(self.parent))
        return self.ids[key]

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _source_keys(folder: Path, manifest: dict[str, Any], n: int) -> list[tuple[Any, ...]]:
    """One key per row: the recorded source index in its source's namespace, else the row in this folder."""
    src = manifest.get("source") or {}
    idx = src.get("indices") if isinstance(src, dict) else None
    if isinstance(idx, list) and len(idx) == n:
        ns = ("source", os.path.normpath(str(src.get("data", ""))), str(src.get("split", "")))
        return [(*ns, int(i)) for i in idx]
    ns = ("folder", str(folder.resolve()))
    return [(*ns, i) for i in range(n)]


def _cifar_classes(victim_labels: np.ndarray, manifest: dict[str, Any]) -> np.ndarray:
    """The victim's labels as CIFAR-10 classes (for per-class accuracy) when the victim has 10 classes, else -1."""
    vc = (manifest.get("victim_spec") or {}).get("classes")
    ten = len(vc) == 10 if isinstance(vc, list) else victim_labels.max(initial=-1) == 9
    ok = ten and victim_labels.min(initial=0) >= -1 and victim_labels.max(initial=-1) < 10
    return victim_labels.copy() if ok else np.full(len(victim_labels), -1, np.int64)


def image_digests(images: np.ndarray) -> list[bytes]:
    """A 16-byte BLAKE2b digest per image (byte-identical images share one)."""
    return [hashlib.blake2b(im.tobytes(), digest_size=16).digest() for im in images]


def load_attack_sets(root: str | os.PathLike[str], size: int | None = None, split: str = "train") -> ImageSet:
    """All attack folders under ``root`` (see the module doc) → clean 0 / attacked 1 ``ImageSet`` with pair groups."""
    dirs = find_attack_dirs(root, split)
    if not dirs:
        raise DataError(f"{root}: no attack folder (originals.npz + attacked.npz) here or one level below")
    uf = _Groups()
    parts: list[tuple[Path, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]] = []
    dropped = 0
    for d in dirs:
        orig, adv, victim_labels, manifest = read_attack_dir(d, size)
        if parts and orig.shape[1:] != parts[0][1].shape[1:]:
            raise DataError(f"{d}: images are {orig.shape[1:]}, {parts[0][0]} holds {parts[0][1].shape[1:]}")
        keep = np.flatnonzero((orig != adv).reshape(len(orig), -1).any(axis=1))
        dropped += len(orig) - len(keep)
        keys = _source_keys(d, manifest, len(orig))
        digests = image_digests(orig[keep])
        gids = []
        for k, dg in zip(keep, digests, strict=True):
            g = uf.id(("src", keys[k]))
            uf.union(g, uf.id(("img", dg)))
            gids.append(g)
        parts.append((d, orig[keep], adv[keep], keep, _cifar_classes(victim_labels[keep], manifest), gids))
    if dropped:
        warnings.warn(f"{root}: {dropped} pair(s) whose attacked image equals its original were left out",
                      stacklevel=2)
    if not any(len(p[1]) for p in parts):
        raise DataError(f"{root}: no attacked image differs from its original")
    groups = np.array([uf.find(g) for p in parts for g in p[5]], np.int64)
    _, groups = np.unique(groups, return_inverse=True)
    images, labels, cifar, paths, group_rows = [], [], [], [], []
    start = 0
    for d, o, a, keep, cc, gids in parts:
        g = groups[start:start + len(gids)]
        start += len(gids)
        images += [o, a]
        labels += [np.zeros(len(o), np.int64), np.ones(len(a), np.int64)]
        cifar += [cc, cc]
        group_rows += [g, g]
        paths += [f"{d / f}#{i}" for f in PAIR_FILES for i in keep]
    ds = ImageSet(np.concatenate(images), np.concatenate(labels), ["clean", "attacked"], np.concatenate(cifar),
                  paths, np.concatenate(group_rows).astype(np.int64))
    h = hashlib.sha256(ds.images.tobytes())
    h.update(ds.labels.tobytes())
    h.update(ds.groups.tobytes())
    ds.fingerprint = h.hexdigest()
    return ds


def shared_originals(a: ImageSet, b: ImageSet) -> int:
    """How many clean images of ``b`` also appear (byte-identical) among the clean images of ``a``."""
    seen = set(image_digests(a.images[a.labels == 0]))
    return sum(dg in seen for dg in image_digests(b.images[b.labels == 0]))
