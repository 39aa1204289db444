"""Studies: robustness to image processing, adversarial evasion and fine-tuning, learning curves.

Each study writes a JSON document (with a ``"study"`` key) next to its plot; ``fakescope.report`` renders them.
No module here imports ``fakescope.training`` at import time, so training can import ``studies.perturb``.
"""

from ..data.transforms import AUGMENT_OPS, PERTURBATIONS, augment_batch, perturb
from .evasion import attack, evasion_study
from .learning_curve import learning_curve
from .robustness import robustness_study

__all__ = ["AUGMENT_OPS", "PERTURBATIONS", "attack", "augment_batch", "evasion_study", "learning_curve", "perturb",
           "robustness_study"]
