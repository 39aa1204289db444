"""Attacks on a victim classifier, one family per file, all behind one registry (``ATTACKS``).

Importing this package registers every family: gradient (FGSM, BIM, PGD), minimum-norm (DeepFool, C&W, each
as ART's and as a batched torch version) and black-box (Square).
"""

from . import blackbox, cw, deepfool, gradient  # noqa: F401  (registers the attacks)
from .base import ATTACKS, Attack, VictimLogits, create_attack, list_attacks, register_attack, run_attack, to_uint8

__all__ = ["ATTACKS", "Attack", "VictimLogits", "create_attack", "list_attacks", "register_attack", "run_attack",
           "to_uint8"]
