"""Architectures, the model contract and checkpoint I/O."""

from . import archs as _archs  # noqa: F401  (registers the architectures)
from . import guarded as _guarded  # noqa: F401  (registers guarded)
from . import srm as _srm  # noqa: F401  (registers srm-cnn)
from .checkpoint import (
    CheckpointError,
    list_bundled,
    load_checkpoint,
    read_metadata,
    resolve,
    save_checkpoint,
)
from .net import CIFAR10_CLASSES, TASKS, ModelSpec, Net
from .registry import MODELS, create_model, list_models, register_model

__all__ = [
    "CIFAR10_CLASSES", "MODELS", "TASKS", "CheckpointError", "ModelSpec", "Net", "create_model", "list_bundled",
    "list_models", "load_checkpoint", "read_metadata", "register_model", "resolve", "save_checkpoint",
]
