"""Studies: robustness to image processing, adversarial evasion and fine-tuning, learning curves, and the two
reproductions of the seed notebook (``reproduce_cifake``, ``reproduce_adversarial``).

Each study writes a JSON document (with a ``"study"`` key) next to its plot; ``fakescope.report`` renders them.
"""

from .evasion import attack, evasion_study
from .learning_curve import learning_curve
from .robustness import robustness_study

__all__ = ["attack", "evasion_study", "learning_curve", "robustness_study"]
