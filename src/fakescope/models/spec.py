"""``ModelSpec``: everything needed to rebuild and use a model, as JSON-able data (no torch import here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..data.tasks import CIFAR10_CLASSES, TASKS

__all__ = ["CIFAR10_CLASSES", "TASKS", "ModelSpec"]


@dataclass
class ModelSpec:
    """Everything needed to rebuild and use a model; travels with the weights as JSON.

    ``tta``: scores average the logits of each image and its horizontal flip. Checkpoints written before the
    field existed record it at the top level of their JSON; ``models.checkpoint.read_metadata`` fills it in.
    """

    arch: str
    task: str = "synthetic"
    classes: list[str] = field(default_factory=lambda: list(TASKS["synthetic"]))
    image_size: int = 32
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.25, 0.25, 0.25])
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5
    temperature: float = 1.0
    resample: str = "bicubic"
    tta: bool = False

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def verdicts(self, scores: Any, threshold: float | None = None) -> list[str]:
        """Class names for calibrated scores: P(label 1) >= threshold (default: the calibrated one), or argmax."""
        if getattr(scores, "ndim", 1) == 2:
            return [self.classes[i] for i in scores.argmax(1)]
        t = self.threshold if threshold is None else threshold
        return [self.classes[1] if s >= t else self.classes[0] for s in scores]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model spec fields: {sorted(unknown)}")
        spec = cls(**d)
        spec.validate()
        return spec

    def validate(self) -> None:
        """Reject specs that are malformed or tampered with, with a clear message."""
        checks = [
            (isinstance(self.arch, str) and bool(self.arch), "arch must be a non-empty string"),
            (isinstance(self.task, str), "task must be a string"),
            (isinstance(self.classes, list) and len(self.classes) >= 2
             and all(isinstance(c, str) for c in self.classes), "classes must be a list of >= 2 names"),
            (isinstance(self.image_size, int) and 4 <= self.image_size <= 1024, "image_size must be 4..1024"),
            (_floats(self.mean, 3), "mean must be 3 numbers"),
            (_floats(self.std, 3) and all(s > 0 for s in self.std), "std must be 3 positive numbers"),
            (isinstance(self.arch_kwargs, dict), "arch_kwargs must be an object"),
            (_num(self.threshold) and 0.0 <= self.threshold <= 1.0, "threshold must be in [0, 1]"),
            (_num(self.temperature) and 0.01 <= self.temperature <= 100.0, "temperature must be in [0.01, 100]"),
            (self.resample in ("bicubic", "bilinear", "nearest", "lanczos"), "unknown resample"),
            (isinstance(self.tta, bool), "tta must be true or false"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"invalid model spec: {msg}")


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and abs(x) != float("inf")


def _floats(xs: Any, n: int) -> bool:
    return isinstance(xs, list) and len(xs) == n and all(_num(x) for x in xs)
