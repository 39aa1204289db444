"""The model registry: ``@register_model(name)`` and ``create_model(name, **kw)``."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..registry import Registry

MODELS: Registry[nn.Module] = Registry("architecture")
register_model = MODELS.register


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Create an architecture body by registry name (see ``list_models()``)."""
    return MODELS.create(name, **kwargs)


def list_models() -> list[str]:
    return MODELS.names()
