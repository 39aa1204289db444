"""Self-describing checkpoints: ``NAME.safetensors`` (weights) + ``NAME.json`` (spec and provenance).

Nothing is ever unpickled. The JSON carries the SHA-256 of the weights file, checked at every load; bundled
checkpoints are also listed with the hashes of both files in ``weights/MANIFEST.json``.
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from .._version import __version__
from ..io import sha256_file, write_bytes, write_json
from .spec import ModelSpec

if TYPE_CHECKING:  # torch is imported by the functions that need it: names and metadata are read without it
    import torch

    from .net import Net

FORMAT = "fakescope-checkpoint/1"
MAX_JSON_BYTES = 1 << 20
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")


class CheckpointError(ValueError):
    """A checkpoint could not be loaded safely; the message says why."""


def bundled_dir() -> Path:
    return Path(str(resources.files("fakescope") / "weights"))


def list_bundled() -> list[str]:
    manifest = bundled_dir() / "MANIFEST.json"
    if not manifest.exists():
        return []
    return sorted(json.loads(manifest.read_text())["checkpoints"])


def save_checkpoint(net: Net, path: str | os.PathLike[str], **meta: Any) -> Path:
    """Write ``<stem>.safetensors`` then ``<stem>.json`` atomically; returns the JSON path.

    ``tta`` (default: ``net.spec.tta``) is written into the spec and, for older readers, at the top level too.
    """
    from safetensors.torch import save

    stem = _stem(path)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    write_bytes(stem.with_suffix(".safetensors"), save(state))
    meta["tta"] = bool(meta.get("tta", net.spec.tta))
    doc = {
        "format": FORMAT,
        "fakescope_version": __version__,
        "spec": {**net.spec.to_dict(), "tta": meta["tta"]},
        "weights_file": stem.with_suffix(".safetensors").name,
        "weights_sha256": sha256_file(stem.with_suffix(".safetensors")),
        **meta,
    }
    write_json(stem.with_suffix(".json"), doc)
    return stem.with_suffix(".json")


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """A bundled name (``fast``, ``best``...) or a path to ``.json``/``.safetensors``/stem → the JSON path."""
    s = str(name_or_path)
    if s in list_bundled():
        return bundled_dir() / f"{s}.json"
    p = Path(s)
    if p.is_dir():
        p = p / "model"
    stem = _stem(p)
    if not stem.with_suffix(".json").exists():
        hint = f" (bundled: {', '.join(list_bundled()) or 'none'})"
        raise CheckpointError(f"no checkpoint at {s!r}: expected {stem.with_suffix('.json')}{hint}")
    return stem.with_suffix(".json")


def display_name(model: str | os.PathLike[str]) -> str:
    """How scans name a model: the bundled name, or the checkpoint path without its suffix."""
    s = str(model)
    return s if s in list_bundled() else str(resolve(s).with_suffix(""))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and validate a checkpoint's JSON (size-limited, schema-checked).

    A spec without ``tta`` (checkpoints written before ``ModelSpec.tta``, every bundled one) gets it from the
    top-level ``tta`` key, so ``ModelSpec.from_dict(doc["spec"]).tta`` is the checkpoint's flip averaging.
    """
    jpath = resolve(path)
    if jpath.stat().st_size > MAX_JSON_BYTES:
        raise CheckpointError(f"{jpath}: metadata larger than {MAX_JSON_BYTES} bytes")
    try:
        doc = json.loads(jpath.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{jpath}: metadata is not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{jpath}: not a fakescope checkpoint (format must be {FORMAT!r})")
    if not isinstance(doc.get("spec"), dict):
        raise CheckpointError(f"{jpath}: metadata has no 'spec' object")
    doc["spec"].setdefault("tta", bool(doc.get("tta", False)))
    try:
        spec = ModelSpec.from_dict(doc["spec"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{jpath}: {e}") from None
    if "tta" in doc and bool(doc["tta"]) != spec.tta:
        raise CheckpointError(f"{jpath}: 'tta' is {doc['tta']!r} but the spec says {spec.tta!r}")
    return doc


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[Net, dict]:
    """Load a model safely: verify hashes, refuse pickles, check architecture and tensor shapes."""
    import torch
    from safetensors.torch import load_file

    from .net import Net

    jpath = resolve(path)
    doc = read_metadata(jpath)
    wpath = checked_weights(jpath, doc)
    spec = ModelSpec.from_dict(doc["spec"])
    try:
        net = Net(spec)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{jpath}: cannot build architecture: {e}") from None
    try:
        state = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{wpath}: not a readable safetensors file ({e})") from None
    expected = net.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{wpath}: weights do not match architecture {spec.arch!r} (missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for k, v in expected.items():
        if state[k].shape != v.shape or state[k].dtype != v.dtype:
            raise CheckpointError(
                f"{wpath}: tensor {k!r} is {tuple(state[k].shape)} {state[k].dtype}, "
                f"architecture expects {tuple(v.shape)} {v.dtype}"
            )
        if v.is_floating_point() and not torch.isfinite(state[k]).all():
            raise CheckpointError(f"{wpath}: tensor {k!r} holds NaN or infinite values")
    net.load_state_dict(state)
    net.to(device).eval()
    return net, doc


def checked_weights(jpath: Path, doc: dict[str, Any]) -> Path:
    """The weights file named by a checkpoint's metadata, after the pickle, hash and manifest checks."""
    wname = doc.get("weights_file")
    if not isinstance(wname, str) or Path(wname).name != wname:
        raise CheckpointError(f"{jpath}: 'weights_file' must be a bare file name next to the JSON")
    wpath = jpath.parent / wname
    if not wpath.exists():
        raise CheckpointError(f"{jpath}: weights file {wpath} is missing")
    with open(wpath, "rb") as fh:
        head = fh.read(4)
    if any(head.startswith(m) for m in _PICKLE_MAGIC):
        raise CheckpointError(f"{wpath}: looks like a pickle/torch.save file; fakescope only loads safetensors")
    _verify_hashes(jpath, wpath, doc)
    return wpath


def _verify_hashes(jpath: Path, wpath: Path, doc: dict[str, Any]) -> None:
    digest = sha256_file(wpath)
    if doc.get("weights_sha256") != digest:
        raise CheckpointError(f"{wpath}: SHA-256 does not match the metadata (corrupted or tampered weights)")
    if jpath.parent.resolve() == bundled_dir().resolve():
        manifest = json.loads((bundled_dir() / "MANIFEST.json").read_text())
        entry = manifest["checkpoints"].get(jpath.stem)
        if entry is None or entry["json_sha256"] != sha256_file(jpath) or entry["weights_sha256"] != digest:
            raise CheckpointError(f"{jpath}: bundled checkpoint does not match weights/MANIFEST.json (tampered?)")


_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


def tensor_header(wpath: str | os.PathLike[str]) -> dict[str, Any]:
    """The tensor table of a safetensors file (name -> dtype, shape, offsets), read from its header alone."""
    with open(wpath, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < n <= MAX_JSON_BYTES * 16:
            raise CheckpointError(f"{wpath}: not a readable safetensors file (header size {n})")
        try:
            table = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{wpath}: not a readable safetensors file ({e})") from None
    if not isinstance(table, dict):
        raise CheckpointError(f"{wpath}: not a readable safetensors file (header is not a table)")
    table.pop("__metadata__", None)
    return table


def describe_checkpoint(model: str | os.PathLike[str]) -> dict[str, Any]:
    """What a checkpoint knows about itself, without torch: its spec, metrics, training config, data fingerprint,
    the SHA-256 of both files (the weights' verified against the metadata, and the manifest for bundled ones) and
    its parameter count from the safetensors header (every value but BatchNorm running statistics)."""
    jpath = resolve(model)
    doc = read_metadata(jpath)
    wpath = checked_weights(jpath, doc)
    spec = ModelSpec.from_dict(doc["spec"])
    table = tensor_header(wpath)
    params = 0
    for name, t in table.items():
        shape = t.get("shape", []) if isinstance(t, dict) else []
        if not name.endswith(_BN_STATS):
            params += math.prod(int(d) for d in shape)
    return {"name": display_name(model), "json_file": str(jpath), "arch": spec.arch, "arch_kwargs": spec.arch_kwargs,
            "task": spec.task, "classes": spec.classes, "image_size": spec.image_size, "threshold": spec.threshold,
            "temperature": spec.temperature, "tta": spec.tta, "metrics": doc.get("metrics", {}),
            "parameters": params, "tensors": len(table), "train_config": doc.get("train_config"),
            "data_fingerprint": doc.get("data_fingerprint"), "weights_file": str(wpath),
            "weights_sha256": doc["weights_sha256"], "json_sha256": sha256_file(jpath),
            "fakescope_version": doc.get("fakescope_version"), "trained_with": doc.get("trained_with"),
            "bundled": jpath.parent.resolve() == bundled_dir().resolve()}


def _stem(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".json", ".safetensors") else p
