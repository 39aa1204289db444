"""The model registry: ``@register_model(name)`` and ``create_model(name, **kw)``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..registry import Registry

if TYPE_CHECKING:
    from torch import nn

MODELS: Registry[nn.Module] = Registry("architecture")
register_model = MODELS.register
_BUILTINS = ("archs", "srm", "guarded", "ensemble")  # modules whose import registers the bundled architectures


def load_builtins() -> None:
    """Import the built-in architecture modules (registers them; imports torch). Idempotent."""
    for name in _BUILTINS:
        importlib.import_module(f".{name}", __package__)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Create an architecture body by registry name (see ``list_models()``)."""
    load_builtins()
    return MODELS.create(name, **kwargs)


def list_models() -> list[str]:
    load_builtins()
    return MODELS.names()
