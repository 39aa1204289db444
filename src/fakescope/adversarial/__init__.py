"""Adversarial images: attack a victim classifier (ART-backed + batched torch attacks) and detect the results.

Importing this package registers the attacks, the detectors and the ``srm-cnn`` architecture::

    from fakescope.adversarial import run_attack, make_manifest, create_attack, write_attack, create_detector
    adv, stats = run_attack(victim, images, labels, "pgd", eps=8 / 255)
    det = create_detector("feature-squeeze", victim_net=victim).fit(clean_val)
    doc = adversarial_benchmark("victim.json", "cifar10/", "runs/adv-bench", n_train=500, n_val=250, n_test=500)
"""

from .adaptive import adaptive_evaluation, adaptive_pgd
from .attacks.art import art_classifier
from .attacks.base import ATTACKS, Attack, VictimLogits, create_attack, list_attacks, run_attack, to_uint8
from .attacks.cw import torch_cw_l2
from .attacks.deepfool import torch_deepfool
from .attacks.pgd import pgd_linf, torch_pgd
from .attacks.stats import attack_stats, perturbation_stats, ssim
from .benchmark import adversarial_benchmark
from .detectors.base import (
    DETECTORS,
    AdversarialDetector,
    create_detector,
    list_detectors,
    paired_imageset,
    threshold_at_fpr,
)
from .detectors.checkpoint import CheckpointDetector
from .detectors.mahalanobis import Mahalanobis
from .detectors.residual import ResidualCNN
from .detectors.squeeze import FeatureSqueezing
from .manifest import make_manifest, read_attack, verify_manifest, write_attack
from .protocol import (
    DEFAULT_ATTACKS,
    attack_sets_from_dirs,
    build_attack_sets,
    evaluate_detector,
    evaluate_scores,
    fit_detector,
    group_split,
    noisy_negatives,
    pair_leak,
)

__all__ = [
    "ATTACKS", "DEFAULT_ATTACKS", "DETECTORS", "AdversarialDetector", "Attack", "CheckpointDetector",
    "FeatureSqueezing", "Mahalanobis",
    "ResidualCNN", "VictimLogits", "art_classifier", "attack_stats", "create_attack", "create_detector", "list_attacks",
    "list_detectors", "make_manifest", "paired_imageset", "perturbation_stats", "read_attack", "run_attack", "ssim",
    "threshold_at_fpr", "to_uint8", "torch_cw_l2", "torch_deepfool", "torch_pgd", "pgd_linf", "verify_manifest",
    "write_attack",
    "adaptive_evaluation", "adaptive_pgd", "adversarial_benchmark", "attack_sets_from_dirs",
    "build_attack_sets", "evaluate_detector",
    "evaluate_scores", "fit_detector", "group_split", "noisy_negatives", "pair_leak",
]
