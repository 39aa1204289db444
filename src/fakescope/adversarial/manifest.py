"""Attack folders: ``originals.npz`` + ``attacked.npz`` + ``manifest.json`` (written last), read back and verified."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..data.arrays import read_npz_or_fail
from ..data.attacksets import PAIR_FILES
from ..io import atomic_open, sha256_file, write_json
from ..models.net import Net
from .attacks.base import Attack
from .attacks.stats import attack_stats, check_images, perturbation_stats

MANIFEST_FORMAT = "fakescope-attack/1"


def checkpoint_hashes(checkpoint: str | os.PathLike[str]) -> dict[str, str]:
    """SHA-256 of a victim checkpoint's weights file and JSON (bundled name or path)."""
    from ..models.checkpoint import read_metadata, resolve

    jpath = resolve(checkpoint)
    wname = read_metadata(jpath)["weights_file"]
    return {"victim_checkpoint": str(checkpoint), "victim_weights_sha256": sha256_file(jpath.parent / wname),
            "victim_json_sha256": sha256_file(jpath)}


def make_manifest(attack: Attack, stats: dict[str, Any], seed: int, victim_net: Net | None = None,
                  victim_checkpoint: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The manifest describing one attack run (``write_attack`` adds n, version and file hashes)."""
    doc: dict[str, Any] = {**attack.describe(), "seed": seed, "stats": dict(stats)}
    if victim_net is not None:
        doc["victim_spec"] = victim_net.spec.to_dict()
    if victim_checkpoint is not None:
        doc.update(checkpoint_hashes(victim_checkpoint))
    return doc


def write_attack(out_dir: str | os.PathLike[str], originals: np.ndarray, adv: np.ndarray, labels: np.ndarray,
                 manifest: dict[str, Any]) -> Path:
    """Write ``originals.npz``, ``attacked.npz`` (``images`` uint8 NHWC + ``labels``) and, last, ``manifest.json``."""
    out = Path(out_dir)
    o, a = check_images(originals, "originals"), check_images(adv, "adv")
    labels = np.asarray(labels, np.int64)
    if o.shape != a.shape or len(labels) != len(o):
        raise ValueError(f"shapes differ: originals {o.shape}, attacked {a.shape}, labels {labels.shape}")
    files = {}
    for name, imgs in (("originals.npz", o), ("attacked.npz", a)):
        with atomic_open(out / name) as fh:
            np.savez(fh, images=imgs, labels=labels)
        files[name] = sha256_file(out / name)
    doc = {"format": MANIFEST_FORMAT, **manifest, "n": len(o), "fakescope_version": __version__, "files": files}
    write_json(out / "manifest.json", doc)
    return out / "manifest.json"


def read_attack(out_dir: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(originals, attacked, labels, manifest) from a folder written by ``write_attack``."""
    out = Path(out_dir)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    (o, lo), (a, la) = ((r.images, r.labels) for r in (read_npz_or_fail(out / n) for n in PAIR_FILES))
    if lo is None or la is None:
        raise ValueError(f"{out}: originals.npz and attacked.npz must hold the victim's labels")
    if not np.array_equal(lo, la):
        raise ValueError(f"{out}: originals.npz and attacked.npz hold different labels")
    return o, a, lo, manifest


def verify_manifest(out_dir: str | os.PathLike[str], victim_net: Net | None = None,
                    victim_checkpoint: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """Recompute a manifest's figures from its files → {name: |recorded - recomputed|} (all 0.0 when it holds).

    Checks (1.0 = mismatch): file hashes, ``n``, and, given ``victim_checkpoint``, its SHA-256. Perturbation stats
    are always recomputed; accuracy stats only with ``victim_net``.
    """
    out = Path(out_dir)
    o, a, labels, manifest = read_attack(out)
    diffs: dict[str, float] = {f"sha256:{k}": float(sha256_file(out / k) != v) for k, v in manifest["files"].items()}
    diffs["manifest_n"] = float(manifest["n"] != len(o))
    recorded = manifest["stats"]
    fresh = attack_stats(victim_net, o, a, labels) if victim_net is not None else perturbation_stats(o, a)
    for k, v in fresh.items():
        r = recorded.get(k)
        if v is None or r is None:
            diffs[k] = 0.0 if v is None and r is None else math.inf
        else:
            diffs[k] = abs(float(r) - float(v))
    if victim_checkpoint is not None:
        h = checkpoint_hashes(victim_checkpoint)["victim_weights_sha256"]
        diffs["victim_weights_sha256"] = float(manifest.get("victim_weights_sha256") != h)
    return diffs
