"""Architectures, the model contract and checkpoint I/O.

Names are imported on first use (PEP 562): checkpoint metadata and ``ModelSpec`` are available without importing
torch; the architectures register themselves when the registry, ``Net`` or a model is first needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checkpoint import CheckpointError, list_bundled, load_checkpoint, read_metadata, resolve, save_checkpoint
    from .net import Net
    from .registry import MODELS, create_model, list_models, register_model
    from .spec import CIFAR10_CLASSES, TASKS, ModelSpec

_LAZY = {
    "CheckpointError": "checkpoint", "list_bundled": "checkpoint", "load_checkpoint": "checkpoint",
    "read_metadata": "checkpoint", "resolve": "checkpoint", "save_checkpoint": "checkpoint", "Net": "net",
    "CIFAR10_CLASSES": "spec", "TASKS": "spec", "ModelSpec": "spec", "MODELS": "registry",
    "create_model": "registry", "list_models": "registry", "register_model": "registry",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{_LAZY[name]}", __name__)
    if name == "MODELS":
        module.load_builtins()
    value = getattr(module, name)
    globals()[name] = value
    return value


__all__ = [
    "CIFAR10_CLASSES", "MODELS", "TASKS", "CheckpointError", "ModelSpec", "Net", "create_model", "list_bundled",
    "list_models", "load_checkpoint", "read_metadata", "register_model", "resolve", "save_checkpoint",
]
