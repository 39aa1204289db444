"""The attack contract: ``Attack``, the registry, ``run_attack`` (uint8 in, uint8 out).

Conventions: images are uint8 NHWC (the ``ImageSet`` format); attacks see float [0, 1] NCHW, which the victim
``Net`` normalises itself. ``eps`` is in [0, 1] units (8/255 = 8 grey levels). Bounded attacks keep ``eps`` as a
hard budget; minimum-norm attacks ignore it and record ``eps: null``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ...models.net import Net
from ...registry import Registry
from .stats import attack_stats, check_images, predict

LINF_EPS = 8 / 255  # default L∞ budget
L2_EPS = 0.5  # default L2 budget ([0, 1] units, the usual CIFAR-10 value)
# Attack families, by what the attacker needs: gradients (bounded), gradients (minimum-norm), output scores only,
# the top-1 decision only; and perturbations outside every Lp ball (rotations, translations).
FAMILIES = ("gradient", "minimum-norm", "score-based", "decision-based", "spatial")


class VictimLogits(nn.Module):
    """(N, C) logits of a victim ``Net`` for float [0, 1] NCHW input; a binary net's logit z becomes [-z/2, z/2].

    float64 input is cast to float32. Input goes channels_last (ART hands over NCHW-contiguous copies;
    convolutions run ~1.5x faster on CPU).
    """

    def __init__(self, net: Net) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() if x.dtype == torch.float64 else x  # ART's HopSkipJump hands over float64 samples
        z = self.net(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x)
        return torch.cat([-z / 2, z / 2], dim=1) if z.shape[1] == 1 else z


@dataclass
class Attack:
    """A configured attack: ``generate(x, y)`` maps float32 [0, 1] NCHW images and int labels to adversarials."""

    name: str
    norm: str  # "linf" | "l2"
    eps: float | None  # hard budget for bounded attacks; None for minimum-norm attacks
    params: dict[str, Any]
    generate: Callable[[np.ndarray, np.ndarray], np.ndarray] = field(repr=False)
    family: str = "gradient"  # one of FAMILIES: what the attacker needs (gradients, scores, decisions) or does

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"attack {self.name}: family must be one of {FAMILIES}, got {self.family!r}")

    @property
    def bounded(self) -> bool:
        return self.eps is not None

    def describe(self) -> dict[str, Any]:
        return {"attack": self.name, "family": self.family, "norm": self.norm, "eps": self.eps,
                "parameters": dict(self.params)}


ATTACKS: Registry[Attack] = Registry("attack")
register_attack = ATTACKS.register


def create_attack(name: str, victim_net: Net, eps: float | None = None, **kw: Any) -> Attack:
    """Configure attack ``name`` against ``victim_net``; ``eps=None`` means the attack's default budget (the registry
    drops None keywords, so the factory's own default applies; minimum-norm attacks take and ignore ``eps``).
    The victim's train/eval mode is left as it was (factories switch it to eval while wrapping it)."""
    was_training = victim_net.training
    try:
        return ATTACKS.create(name, victim_net=victim_net, eps=eps, **kw)
    finally:
        victim_net.train(was_training)


def list_attacks() -> list[str]:
    return ATTACKS.names()


def attack_family(name: str, victim_net: Net) -> str:
    """The family (``FAMILIES``) of registered attack ``name``."""
    return create_attack(name, victim_net).family


@contextlib.contextmanager
def frozen(net: nn.Module) -> Iterator[None]:
    """Parameters stop requiring grad meanwhile: ART's ``loss_gradient`` calls ``loss.backward()``, which would
    also compute every weight gradient at each step (~1/3 of PGD's time on CPU); input gradients are unchanged."""
    flags = [p.requires_grad for p in net.parameters()]
    for p in net.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(net.parameters(), flags, strict=True):
            p.requires_grad_(f)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (ART uses it) and torch's, restoring both afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float [0, 1] NCHW → uint8 NHWC exactly as a user saving images would: rint(x·255), then clip."""
    return np.clip(np.rint(np.asarray(x, np.float64) * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def run_attack(victim_net: Net, images: np.ndarray, labels: np.ndarray, attack: str | Attack = "pgd",
               eps: float | None = None, batch_size: int = 256, seed: int = 0,
               **attack_kw: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Attack uint8 NHWC ``images`` (true ``labels``) → (uint8 NHWC adversarials, ``attack_stats``).

    Minimum-norm attacks leave images the victim already misclassifies unchanged (they are adversarial already).
    """
    images = check_images(images)
    labels = np.asarray(labels, np.int64)
    if isinstance(attack, Attack) and (attack_kw or eps is not None):
        raise ValueError("pass eps and attack options to create_attack, not with a configured Attack")
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    if images.shape[1:3] != (victim_net.spec.image_size,) * 2:
        raise ValueError(f"images are {images.shape[1]}x{images.shape[2]}; resize them to the victim's "
                         f"{victim_net.spec.image_size}x{victim_net.spec.image_size} first")
    was_training = victim_net.training
    victim_net.eval()
    out = images.copy()
    try:
        with seeded(seed):
            atk = attack if isinstance(attack, Attack) else create_attack(attack, victim_net, eps=eps, **attack_kw)
            for i in range(0, len(images), batch_size):
                todo = np.arange(len(images))[i:i + batch_size]
                if not atk.bounded:
                    todo = todo[predict(victim_net, images[todo]) == labels[todo]]
                if len(todo):
                    x = images[todo].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
                    out[todo] = to_uint8(atk.generate(x, labels[todo]))
        return out, attack_stats(victim_net, images, out, labels)
    finally:
        victim_net.train(was_training)
