"""Score-based black-box attacks (queries only, no gradients)."""

from __future__ import annotations

from ...models.net import Net
from .art import _art
from .base import LINF_EPS, Attack, register_attack


@register_attack("square", doc="Square attack (L∞, black-box, queries only): 100 iterations, p_init 0.8.")
def _square(victim_net: Net, eps: float = LINF_EPS, max_iter: int = 100, p_init: float = 0.8,
            nb_restarts: int = 1) -> Attack:
    params = {"norm": "inf", "eps": eps, "max_iter": max_iter, "p_init": p_init, "nb_restarts": nb_restarts}
    return _art("square", "linf", eps, victim_net, "SquareAttack", params, family="score-based")
