"""Resumable training state: ``state-EPOCH.safetensors`` + ``last.json`` (its commit record)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from ..io import write_bytes, write_json
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
