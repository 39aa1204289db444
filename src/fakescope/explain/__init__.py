"""Explanations for detector verdicts: Grad-CAM and Integrated Gradients heat maps, overlays, ``explain``."""

from .attributions import (
    EXPLAINERS,
    Explainer,
    create_explainer,
    explain_images,
    ig_attributions,
    integrated_gradients,
    list_explainers,
)
from .gradcam import default_target_layer, grad_cam
from .render import DEFAULT_METHODS, explain, overlay

__all__ = [
    "DEFAULT_METHODS", "EXPLAINERS", "Explainer", "create_explainer", "default_target_layer", "explain",
    "explain_images", "grad_cam", "ig_attributions", "integrated_gradients", "list_explainers", "overlay",
]
