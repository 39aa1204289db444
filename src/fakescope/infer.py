"""Batched inference on uint8 NHWC arrays (the ``ImageSet`` format)."""

from __future__ import annotations

import numpy as np
import torch

from .models.net import Net


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 NHWC numpy → uint8 NCHW channels_last tensor (no copy of pixel data on CPU)."""
    arr = np.ascontiguousarray(images)
    if not arr.flags.writeable:  # e.g. arrays straight from Pillow; torch wants writable memory
        arr = arr.copy()
    t = torch.from_numpy(arr).permute(0, 3, 1, 2)
    return t.to(device)


@torch.inference_mode()
def predict_logits(net: Net, images: np.ndarray, batch_size: int = 1024, tta: bool = False,
                   device: torch.device | str | None = None) -> np.ndarray:
    """Raw logits for uint8 NHWC images; ``tta`` averages with the horizontal flip. Restores the model's mode."""
    device = device or next(net.parameters()).device
    was_training = net.training
    net.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            x = to_tensor(images[i:i + batch_size], device)
            z = net.logits(x)
            if tta:
                z = (z + net.logits(x.flip(3))) / 2
            out.append(z.float().cpu())
    finally:
        net.train(was_training)
    if not out:
        return np.zeros((0,), np.float32)
    return torch.cat(out).numpy()


def calibrated(net: Net, logits: np.ndarray) -> np.ndarray:
    """Logits → calibrated probabilities with the checkpoint's temperature."""
    z = torch.from_numpy(np.asarray(logits, np.float32)) / net.spec.temperature
    return (torch.sigmoid(z) if z.dim() == 1 else torch.softmax(z, dim=1)).numpy()
