"""Decision-based black-box attacks (the top-1 label only): ART's HopSkipJump (Chen et al. 2020).

Minimum-norm: HopSkipJump starts from a misclassified point (random noise blended in) and walks along the
boundary towards the original, so it records ``eps: null`` and reports the L2 it reached. The defaults are cut
down from ART's (50 iterations, 10,000 evaluations per gradient estimate) so that a few hundred CIFAR-10 images
run in minutes on a CPU; raise them with ``--param`` for a stronger attack.
"""

from __future__ import annotations

from ...models.net import Net
from .art import _art
from .base import Attack, register_attack


@register_attack("hsj", doc="ART HopSkipJump (L2, decision-based black-box, minimum-norm): 5 iterations, at most "
                 "200 evaluations per gradient estimate (ART's defaults: 50 and 10,000).")
def _hop_skip_jump(victim_net: Net, eps: float | None = None, max_iter: int = 5, max_eval: int = 200,
                   init_eval: int = 25, init_size: int = 50) -> Attack:
    params = {"norm": 2, "max_iter": max_iter, "max_eval": max_eval, "init_eval": init_eval, "init_size": init_size,
              "targeted": False}
    return _art("hsj", "l2", None, victim_net, "HopSkipJump", params, family="decision-based")
