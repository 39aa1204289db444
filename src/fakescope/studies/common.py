"""Helpers shared by the studies: seeded per-class subsets, figures written atomically, JSON-safe numbers."""

from __future__ import annotations

import math
import os
from typing import Any

from ..io import save_figure


def has_test_split(data: str | os.PathLike[str]) -> bool:
    """True for a CIFAKE-layout folder (``train/`` and ``test/``). Other sources (a two-class folder, ``.npz``, a
    file list) load the same images whatever split is asked, so a study must not train and test on them both."""
    return os.path.isdir(data) and os.path.isdir(os.path.join(data, "train")) and os.path.isdir(
        os.path.join(data, "test"))


def finite_or_none(v: Any) -> float | None:
    """A float, or ``None`` for missing/NaN/infinite values (JSON has no NaN)."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` not registered with pyplot (no global state, no GUI backend)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110)


def save(fig: Any, path: str | os.PathLike[str]) -> None:
    """Lay out and write ``fig`` atomically."""
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
