"""Adversarial-image detectors, one per file, all behind one registry (``DETECTORS``)."""

from . import checkpoint, mahalanobis, residual, squeeze  # noqa: F401  (registers the detectors)
from .base import DETECTORS, AdversarialDetector, create_detector, list_detectors

__all__ = ["DETECTORS", "AdversarialDetector", "create_detector", "list_detectors"]
