"""``srm-cnn``: a fixed SRM high-pass residual stem + a small CNN, for low-amplitude (adversarial) noise.

Registered with the other architectures when ``fakescope.models`` is imported.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .archs import Head, conv_bn
from .layers import declare_layers
from .layout import out_dim
from .registry import register_model

# Steganalysis rich-model (SRM) kernels (Fridrich & Kodovsky 2012), as used by Zhou et al.'s RGB-N, on 5x5 grids.
_SRM = [
    [[0, 0, 0, 0, 0], [0, -1, 2, -1, 0], [0, 2, -4, 2, 0], [0, -1, 2, -1, 0], [0, 0, 0, 0, 0]],  # KB (3x3) / 4
    [[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]],  # KV / 12
    [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -2, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],  # 2nd order, horizontal / 2
    [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, -2, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]],  # 2nd order, vertical / 2
]
_SRM_SCALE = [4.0, 12.0, 2.0, 2.0]


def srm_kernels() -> torch.Tensor:
    """The fixed (4, 5, 5) high-pass kernels; each sums to 0, so flat regions give zero residual."""
    k = torch.tensor(_SRM, dtype=torch.float32)
    return k / torch.tensor(_SRM_SCALE).view(-1, 1, 1)


class SRMStem(nn.Module):
    """Per-channel fixed high-pass filtering (not trained) + truncation: (N, C, H, W) → (N, 4C, H, W) in [-1, 1].

    Applied to the NORMALISED input: ``gain`` converts it back to grey levels (255·std; the default 63.75 matches
    the default spec std 0.25), so ``tlu`` is in grey levels: residuals are clamped to ±tlu (a truncated linear
    unit, as in steganalysis) and divided by it, which suppresses image edges and keeps the noise floor.
    """

    def __init__(self, in_chans: int = 3, gain: float = 63.75, tlu: float = 8.0) -> None:
        super().__init__()
        self.in_chans, self.gain, self.tlu = in_chans, gain, tlu
        k = srm_kernels()
        self.out_chans = in_chans * len(k)
        self.register_buffer("weight", k.repeat(in_chans, 1, 1).unsqueeze(1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x * self.gain, (2, 2, 2, 2), mode="replicate")
        r = F.conv2d(x, self.weight.to(x.dtype), groups=self.in_chans)
        return r.clamp(-self.tlu, self.tlu) / self.tlu


@register_model("srm-cnn", doc="Fixed SRM high-pass residual stem + small CNN, for low-amplitude adversarial noise.")
def srm_cnn(image_size: int = 32, num_classes: int = 2, in_chans: int = 3, width: int = 16, gain: float = 63.75,
            tlu: float = 8.0) -> nn.Module:
    """SRMStem, 2 convs at full resolution, 2 pooled stages, global max+avg pooling head (~5 MFLOPs at 32x32, w=16)."""
    w = width
    stem = SRMStem(in_chans, gain, tlu)
    body = nn.Sequential(
        stem,
        conv_bn(stem.out_chans, w),
        conv_bn(w, w),
        nn.MaxPool2d(2),
        conv_bn(w, 2 * w),
        nn.MaxPool2d(2),
        conv_bn(2 * w, 2 * w),
        Head(2 * w, out_dim(num_classes)),
    )
    return declare_layers(body, features="6.0", classifier="7.fc")
