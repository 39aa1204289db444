"""Attacks on a victim classifier, one family per file, all behind one registry (``ATTACKS``).

Importing this package registers every family: gradient (FGSM, BIM, PGD as ART's, and ``pgd-torch`` on the one
torch PGD core ``pgd.pgd_linf``), minimum-norm (DeepFool, C&W, each as ART's and as a batched torch version) and
black-box (Square).
"""

from . import blackbox, cw, deepfool, gradient, pgd  # noqa: F401  (registers the attacks)
from .base import ATTACKS, Attack, VictimLogits, create_attack, list_attacks, register_attack, run_attack, to_uint8

__all__ = ["ATTACKS", "Attack", "VictimLogits", "create_attack", "list_attacks", "register_attack", "run_attack",
           "to_uint8"]
