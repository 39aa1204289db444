"""``Scorer``: what every inference engine offers (torch ``Detector``, ONNX Runtime ``OnnxDetector``), torch-free.

Scans, the server and explanations hold models through this contract; ``uses_torch`` is the one capability they
ask about (a scan that only holds engines without torch never imports it, nor tunes its threads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from ..models.spec import ModelSpec


@runtime_checkable
class Scorer(Protocol):
    """A loaded checkpoint that scores uint8 NHWC images and names verdicts; see ``inference.scorer.Detector``."""

    name: str  # how scans name the model: the bundled name or the checkpoint path without its suffix
    uses_torch: bool  # whether scoring runs torch (scans then balance torch's threads against decode workers)

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def task(self) -> str: ...

    @property
    def classes(self) -> list[str]: ...

    @property
    def threshold(self) -> float: ...

    @property
    def image_size(self) -> int: ...

    @property
    def tta(self) -> bool: ...

    def scores(self, images: np.ndarray, batch_size: int | None = None, bf16: bool = False) -> np.ndarray:
        """Calibrated P(label 1) per image (binary tasks) or class probabilities (N, C)."""
        ...

    def labels(self, scores: np.ndarray, threshold: float | None = None) -> list[str]:
        """Verdict names for ``scores`` at ``threshold`` (default: the checkpoint's calibrated one)."""
        ...
