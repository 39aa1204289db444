"""Attacks on a victim classifier, one family per file, all behind one registry (``ATTACKS``).

Importing this package registers every family: gradient (FGSM, BIM, PGD as ART's, and ``pgd-torch`` on the one
torch PGD core ``pgd.pgd_linf``), minimum-norm (DeepFool, C&W, each as ART's and as a batched torch version),
score-based black-box (Square; SimBA, batched torch), decision-based black-box (HopSkipJump) and spatial
(rotation + translation grid search). Each ``Attack`` names its ``family`` (``base.FAMILIES``).
"""

from . import blackbox, cw, decision, deepfool, gradient, pgd, simba, spatial  # noqa: F401  (registers the attacks)
from .base import (
    ATTACKS,
    FAMILIES,
    Attack,
    VictimLogits,
    attack_family,
    create_attack,
    list_attacks,
    register_attack,
    run_attack,
    to_uint8,
)

__all__ = ["ATTACKS", "FAMILIES", "Attack", "VictimLogits", "attack_family", "create_attack", "list_attacks",
           "register_attack", "run_attack", "to_uint8"]
