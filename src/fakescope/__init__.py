"""fakescope: tell AI-generated from real images, and adversarially attacked from clean ones.

Public API (every CLI command is one of these functions)::

    from fakescope import load_detector, scan, train, evaluate, reproduce_cifake
    det = load_detector("fast")           # bundled model, or a path to NAME.json / NAME.safetensors
    rows = scan(["photos/"], "fast")      # one Verdict per file: label, calibrated score, error, warning

The names are imported on first use, so ``import fakescope`` (and the CLI) does not import torch up front.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .inference.scorer import Detector, load_detector
    from .scanning.output import Verdict
    from .scanning.scan import scan
    from .training.config import TrainConfig, resolve_config
    from .training.loop import fit

_LAZY = {"TrainConfig": "training.config", "resolve_config": "training.config", "Detector": "inference.scorer",
         "load_detector": "inference.scorer", "Verdict": "scanning.scan", "scan": "scanning.scan",
         "fit": "training.loop"}


def __getattr__(name: str) -> Any:
    """Import the public names lazily (PEP 562)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def train(config: TrainConfig | None = None, **kwargs: object) -> dict:
    """Train from a ``TrainConfig`` or keyword arguments (the same names as ``fakescope train`` flags)."""
    from .training.config import resolve_config
    from .training.loop import fit

    return fit(config or resolve_config(**kwargs))


def evaluate(model: str, data: str, **kwargs: object) -> dict:
    """Metrics of ``model`` on a labelled dataset (see ``fakescope.evaluation.evaluate``)."""
    from .evaluation.evaluate import evaluate as _evaluate

    return _evaluate(model, data, **kwargs)


def reproduce_cifake(data: str, **kwargs: object) -> dict:
    """The seed notebook's CIFAKE experiment, then ours (see ``fakescope.studies.reproduce_cifake``)."""
    from .studies.reproduce_cifake import reproduce_cifake as _reproduce

    return _reproduce(data, **kwargs)


__all__ = ["Detector", "TrainConfig", "Verdict", "__version__", "evaluate", "fit", "load_detector",
           "reproduce_cifake", "resolve_config", "scan", "train"]
