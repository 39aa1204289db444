"""Tiny adversarial fixtures shared by the adversarial tests: structured 10-class images and a tiny victim."""

from __future__ import annotations

import numpy as np
import torch

from fakescope.models import CIFAR10_CLASSES, ModelSpec, Net
from fakescope.training.config import TrainConfig
from fakescope.training.loop import make_optimizer, train_step


def structured(n: int, size: int = 32, seed: int = 0, noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """10 classes: a class colour + a grating whose orientation depends on the class, random phase, pixel noise."""
    rng = np.random.default_rng(seed)
    colours = np.random.default_rng(1234).uniform(0.25, 0.75, (10, 3))
    y = np.arange(n) % 10
    yy, xx = np.mgrid[0:size, 0:size] / size
    th = np.pi * y / 10
    phase = rng.uniform(0, 2 * np.pi, n)
    proj = np.cos(th)[:, None, None] * xx + np.sin(th)[:, None, None] * yy
    g = np.sin(2 * np.pi * 3 * proj + phase[:, None, None])
    imgs = colours[y][:, None, None, :] + 0.15 * g[..., None] + rng.normal(0, noise, (n, size, size, 3))
    return np.clip(np.rint(imgs * 255), 0, 255).astype(np.uint8), y.astype(np.int64)


def tiny_victim() -> Net:
    """A fast(width=8) CIFAR-10 classifier trained for 30 Adam steps on structured images (seeded)."""
    torch.manual_seed(0)
    net = Net(ModelSpec(arch="fast", task="classify", classes=list(CIFAR10_CLASSES), arch_kwargs={"width": 8}))
    x, y = structured(100, seed=100)
    cfg = TrainConfig(lr=0.01, optimizer="adam", label_smoothing=0.0, weight_decay=0.0)
    opt = make_optimizer(cfg, net)
    xt, yt = torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(y)
    for _ in range(30):
        train_step(net, opt, xt, yt, cfg, amp=False)
    return net.eval()
