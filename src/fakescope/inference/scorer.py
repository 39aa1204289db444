"""``Detector``: a loaded checkpoint + its input spec + calibration → scores and verdicts.

Images enter as numpy arrays or torch tensors, uint8 or [0, 1] floats, one HWC/CHW image or an NHWC/NCHW batch
(the one convention of ``fakescope.data.images_from_array``); the detector resizes nothing itself — decoding to
the model's input size happens in ``fakescope.data``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..data import images_from_array
from ..models import ModelSpec, Net, load_checkpoint
from ..models.checkpoint import display_name
from ..models.fuse import fuse_for_inference
from .calibration import calibrated_probs
from .contract import Scorer
from .predict import predict_logits


@dataclass
class Detector:
    """A model ready for inference (BatchNorm folded, eval mode) with its checkpoint metadata (a ``Scorer``)."""

    net: Net
    meta: dict[str, Any]
    name: str
    uses_torch: ClassVar[bool] = True

    @classmethod
    def load(cls, model: str | os.PathLike[str] = "fast", device: str = "cpu") -> Detector:
        """Load a bundled model by name (``fast``, ``best``...) or a checkpoint path (.json/.safetensors/stem)."""
        net, meta = load_checkpoint(model, device)
        net = fuse_for_inference(net).to(memory_format=torch.channels_last)
        return cls(net, meta, display_name(model))

    @property
    def spec(self) -> ModelSpec:
        return self.net.spec

    @property
    def task(self) -> str:
        return self.net.spec.task

    @property
    def classes(self) -> list[str]:
        return self.net.spec.classes

    @property
    def threshold(self) -> float:
        return self.net.spec.threshold

    @property
    def image_size(self) -> int:
        return self.net.spec.image_size

    @property
    def tta(self) -> bool:
        return self.net.spec.tta

    def scores(self, images: np.ndarray, batch_size: int | None = None, bf16: bool = False) -> np.ndarray:
        """Calibrated P(label 1) per image (binary tasks) or class probabilities (N, C); ``bf16``: see
        ``predict_logits``. ``images``: anything ``images_from_array`` takes (NHWC/NCHW, uint8/float, numpy/torch)."""
        arr = images_from_array(images, "images")  # DataError (a ValueError) on bad input; no copy for uint8 NHWC
        if arr.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(f"images are {arr.shape[1]}x{arr.shape[2]}; this model takes "
                             f"{self.image_size}x{self.image_size} (decode files with fakescope.data.decode_image)")
        logits = predict_logits(self.net, arr, batch_size, tta=self.tta, bf16=bf16)
        return calibrated_probs(logits, self.net.spec.temperature).astype(np.float32)  # as the ONNX engine

    def labels(self, scores: np.ndarray, threshold: float | None = None) -> list[str]:
        """Verdict names for scores at ``threshold`` (default: the calibrated threshold of the checkpoint)."""
        return self.net.spec.verdicts(scores, threshold)

    def describe(self) -> dict[str, Any]:
        spec = self.net.spec
        return {"name": self.name, "arch": spec.arch, "task": spec.task, "classes": spec.classes,
                "image_size": spec.image_size, "threshold": spec.threshold, "temperature": spec.temperature,
                "tta": self.tta, "metrics": self.meta.get("metrics", {}),
                "parameters": sum(p.numel() for p in self.net.parameters())}


def load_detector(model: str | os.PathLike[str] = "fast", device: str = "cpu") -> Detector:
    """Shorthand for ``Detector.load``."""
    return Detector.load(model, device)


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)


__all__ = ["Detector", "Path", "Scorer", "load_detector"]
