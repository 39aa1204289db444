"""Gradient attacks (ART): FGSM, BIM, PGD under L∞ and L2."""

from __future__ import annotations

from ...models.net import Net
from .art import _art
from .base import L2_EPS, LINF_EPS, Attack, register_attack


@register_attack("fgsm", doc="Fast gradient sign method: one L∞ step of size eps (default 8/255).")
def _fgsm(victim_net: Net, eps: float = LINF_EPS) -> Attack:
    return _art("fgsm", "linf", eps, victim_net, "FastGradientMethod", {"norm": "inf", "eps": eps, "eps_step": eps})


@register_attack("bim", doc="Basic iterative method (L∞): 10 steps of eps/4, no random start.")
def _bim(victim_net: Net, eps: float = LINF_EPS, max_iter: int = 10, eps_step: float | None = None) -> Attack:
    """``eps_step`` defaults to ``eps / 4``."""
    params = {"eps": eps, "eps_step": eps / 4 if eps_step is None else eps_step, "max_iter": max_iter}
    return _art("bim", "linf", eps, victim_net, "BasicIterativeMethod", params)


def _pgd(name: str, norm: str, victim_net: Net, eps: float, max_iter: int, eps_step: float | None,
         num_random_init: int) -> Attack:
    params = {"norm": "inf" if norm == "linf" else 2, "eps": eps, "max_iter": max_iter,
              "eps_step": 2.5 * eps / max_iter if eps_step is None else eps_step,  # Madry et al.'s rule
              "num_random_init": num_random_init}
    return _art(name, norm, eps, victim_net, "ProjectedGradientDescent", params)


@register_attack("pgd", doc="Projected gradient descent (L∞): 10 steps of 2.5·eps/10 from one random start.")
def _pgd_linf(victim_net: Net, eps: float = LINF_EPS, max_iter: int = 10, eps_step: float | None = None,
              num_random_init: int = 1) -> Attack:
    return _pgd("pgd", "linf", victim_net, eps, max_iter, eps_step, num_random_init)


@register_attack("pgd-l2", doc="Projected gradient descent (L2, default eps 0.5): 10 steps from one random start.")
def _pgd_l2(victim_net: Net, eps: float = L2_EPS, max_iter: int = 10, eps_step: float | None = None,
            num_random_init: int = 1) -> Attack:
    return _pgd("pgd-l2", "l2", victim_net, eps, max_iter, eps_step, num_random_init)
