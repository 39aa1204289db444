"""Resumable training state: ``state-EPOCH.safetensors`` + ``last.json`` (its commit record), and the run's
``history.jsonl`` bookkeeping on start and resume (the data it trains on, what a resume changed)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save

from ..data import ImageSet
from ..io import append_jsonl, read_jsonl, write_bytes, write_json
from ..models import Net


def save_state(run: Path, net: Net, opt: torch.optim.Optimizer, epoch: int, step: int) -> None:
    """Training state (model + optimizer) as ``state-EPOCH.safetensors``, then ``last.json`` naming it.

    ``last.json`` is the commit record: it is replaced atomically only after its weights file is complete, so a
    kill at any instant leaves a consistent (weights, metadata) pair. Older state files are removed afterwards.
    """
    sd = opt.state_dict()
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    name = f"state-{epoch}.safetensors"
    write_bytes(run / name, save(tensors))
    write_json(run / "last.json", {"epoch": epoch, "step": step, "state_file": name, "opt_scalars": scalars,
                                   "param_groups": [{k: v for k, v in g.items() if k != "params"}
                                                    for g in sd["param_groups"]]})
    for old in run.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_state(run: Path, net: Net, opt: torch.optim.Optimizer) -> tuple[int, int]:
    meta = json.loads((run / "last.json").read_text())
    name = meta.get("state_file", "last.safetensors")  # runs written before per-epoch state files
    if Path(name).name != name:
        raise ValueError(f"{run / 'last.json'}: state_file must be a bare file name")
    tensors = load_file(str(run / name))
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    sd = opt.state_dict()
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for k, v in meta["opt_scalars"].items():
        pid, name = k.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    groups = [{**g, "params": old["params"]} for g, old in zip(meta["param_groups"], sd["param_groups"], strict=True)]
    opt.load_state_dict({"state": state, "param_groups": groups})
    return int(meta["epoch"]), int(meta["step"])


def resume_history(run: Path, resume: bool, net: Net, opt: torch.optim.Optimizer,
                   say: Callable[[str], None]) -> tuple[int, int]:
    """(first epoch to train, global step): the saved state when resuming, and a history without the lines of
    an interrupted epoch (none at all for a fresh run)."""
    start_epoch, step = 0, 0
    if resume and (run / "last.json").exists():
        start_epoch, step = load_state(run, net, opt)
        say(f"resumed from epoch {start_epoch} (step {step})")
    history = run / "history.jsonl"
    if start_epoch == 0 and history.exists():
        history.unlink()
    elif history.exists():  # drop step lines from the epoch that was interrupted
        kept = [r for r in read_jsonl(history) if r.get("epoch", 0) <= start_epoch]
        write_bytes(history, "".join(json.dumps(r) + "\n" for r in kept).encode())
    return start_epoch, step


def split_digest(train: ImageSet, val: ImageSet) -> str:
    """SHA-256 of the validation images and labels and of the training labels: the split a run trains on."""
    h = hashlib.sha256()
    for a in (val.images, val.labels, train.labels):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def record_data(run: Path, ds: ImageSet, train: ImageSet, val: ImageSet, start_epoch: int, step: int,
                changes: dict[str, list[Any]], say: Callable[[str], None]) -> None:
    """A fresh run: a ``"data"`` line in ``history.jsonl``. A resumed one: refuse other data than that line's,
    then a ``"resume"`` line with what changed (``{field: [saved, new]}``)."""
    history = run / "history.jsonl"
    digest = split_digest(train, val)
    if start_epoch == 0:
        append_jsonl(history, {"kind": "data", "epoch": 0, "fingerprint": ds.fingerprint, "train": len(train),
                               "val": len(val), "split_sha256": digest})
        return
    rec = next((r for r in read_jsonl(history) if r.get("kind") == "data"), None)
    if rec is not None and rec.get("split_sha256") != digest:
        raise ValueError(f"cannot resume {run}: its data changed since the run started ({rec.get('train')} train / "
                         f"{rec.get('val')} validation images then, {len(train)} / {len(val)} now, or other "
                         "pixels); train into another --out")
    append_jsonl(history, {"kind": "resume", "epoch": start_epoch, "step": step, "changed": changes})
    if changes:
        say("resume changes " + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()))
