"""ART glue: a victim ``Net`` as an ART classifier, and an ``Attack`` running an ART evasion class.

ART is imported lazily, so the attack modules import without it.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from torch import nn

from ...models.net import Net
from .base import Attack, VictimLogits, frozen

ART_BATCH = 1 << 16  # run_attack already chunks; ART processes each chunk in one go


def art_classifier(victim_net: Net) -> Any:
    """Wrap ``victim_net`` as an ART ``PyTorchClassifier`` on float [0, 1] NCHW input (the Net normalises)."""
    from art.estimators.classification import PyTorchClassifier

    victim_net.eval()
    device = next(victim_net.parameters()).device
    s = victim_net.spec.image_size
    return PyTorchClassifier(model=VictimLogits(victim_net), loss=nn.CrossEntropyLoss(), input_shape=(3, s, s),
                             nb_classes=max(2, len(victim_net.spec.classes)), clip_values=(0.0, 1.0),
                             device_type="gpu" if device.type == "cuda" else "cpu")


def _art(name: str, norm: str, eps: float | None, victim_net: Net, cls_path: str, params: dict[str, Any],
         family: str | None = None) -> Attack:
    """An ``Attack`` running ART class ``art.attacks.evasion.<cls_path>`` with ``params`` (labels one-hot).

    ``params`` stay JSON-safe for the manifest: ``norm`` is ``"inf"`` or ``2`` and becomes ``np.inf`` for ART.
    ``family`` defaults to ``gradient`` for bounded attacks and ``minimum-norm`` for the others.
    """
    import art.attacks.evasion as evasion

    n_cls = max(2, len(victim_net.spec.classes))
    cls = getattr(evasion, cls_path)
    kw = {k: np.inf if (k, v) == ("norm", "inf") else v for k, v in params.items()}
    if "verbose" in inspect.signature(cls.__init__).parameters:
        kw["verbose"] = False
    impl = cls(art_classifier(victim_net), **kw, batch_size=ART_BATCH)

    def generate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with frozen(victim_net):
            return impl.generate(x=x, y=np.eye(n_cls, dtype=np.float32)[y]).astype(np.float32)

    return Attack(name, norm, eps, params, generate, family or ("gradient" if eps is not None else "minimum-norm"))
