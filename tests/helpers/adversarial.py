"""Tiny adversarial fixtures shared by the tests: structured 10-class images, a tiny victim, attack folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fakescope.adversarial import write_attack
from fakescope.models import CIFAR10_CLASSES, ModelSpec, Net
from fakescope.training.config import TrainConfig
from fakescope.training.loop import make_optimizer, run_epoch


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
    run_epoch(net, opt, [(xt, yt)] * 30, cfg)  # the whole set as one batch, 30 times
    return net.eval()


def smooth(n: int, seed: int, size: int = 32) -> np.ndarray:
    """Smooth colour + grating images with ±1 grey level of noise (natural-image-like, low residual)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    th, ph = rng.uniform(0, np.pi, n), rng.uniform(0, 2 * np.pi, n)
    g = np.sin(2 * np.pi * 2 * (np.cos(th)[:, None, None] * xx + np.sin(th)[:, None, None] * yy) + ph[:, None, None])
    x = (rng.uniform(0.3, 0.7, (n, 3))[:, None, None, :] + 0.15 * g[..., None]) * 255
    return np.clip(np.rint(x + rng.normal(0, 1, x.shape)), 0, 255).astype(np.uint8)


def attack_folder(folder: Path, clean: np.ndarray, amplitude: int, seed: int, indices: np.ndarray | None = None,
                  data: str = "cifar10", manifest: bool = True) -> np.ndarray:
    """Write clean + block-noise copies as ``write_attack`` does; returns the attacked images."""
    adv = block_noise(clean, amplitude, seed)
    doc: dict = {"attack": "block-noise", "norm": "linf", "eps": amplitude / 255, "stats": {}}
    if indices is not None:
        doc["source"] = {"data": data, "split": "test", "indices": [int(i) for i in indices]}
    write_attack(folder, clean, adv, np.arange(len(clean)) % 10, doc)
    if not manifest:
        (folder / "manifest.json").unlink()
    return adv


def block_noise(x: np.ndarray, amplitude: int, seed: int) -> np.ndarray:
    """Random ±amplitude signs on 2x2 blocks: a stand-in for an L∞ attack."""
    rng = np.random.default_rng(seed)
    s = rng.choice([-amplitude, amplitude], size=(len(x), x.shape[1] // 2, x.shape[2] // 2, 3))
    return np.clip(x.astype(np.int64) + s.repeat(2, 1).repeat(2, 2), 0, 255).astype(np.uint8)
