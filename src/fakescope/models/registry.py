"""The model registry: ``@register_model(name)`` and ``create_model(name, **kw)``."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
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


def builtin_architectures() -> dict[str, str]:
    """Name -> one-line description of each built-in architecture, read from the source of the modules that
    register them (``@register_model(name, doc=...)``, else the function's docstring), so listing them costs no
    torch import (``fakescope models``, ``train --help``). Equal to ``MODELS``' names and docs once loaded."""
    found: dict[str, str] = {}
    for module in _BUILTINS:
        tree = ast.parse((Path(__file__).with_name(f"{module}.py")).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "register_model":
                    doc = next((k.value.value for k in deco.keywords if k.arg == "doc"
                                and isinstance(k.value, ast.Constant)), None)
                    found[deco.args[0].value] = doc or (ast.get_docstring(node) or "").strip().split("\n")[0]
    return dict(sorted(found.items()))
