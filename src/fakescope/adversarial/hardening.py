"""Dynamic adversary training ("hardening"): fine-tune a detector on adaptive examples made against itself.

In every training batch (an attack folder's pairs: clean label 0, attacked label 1), a share of the clean images
is attacked by ``adaptive.adaptive_pgd`` against the victim AND the detector as it is at that step (eval mode,
flip-averaged as at inference), at an ε drawn from ``eps`` and a λ from ``lams``; the rounded uint8 copies
replace as many attacked images of the batch (label 1), and (``matched_noise``) the sources themselves become
copies with Gaussian noise of the same per-image L2 (label 0). Without those, the detector learns the cheap rule
"noise means attacked" (a first run flagged 68–100% of noise-matched clean images); with them it must tell the
adaptive perturbation's structure from random noise of equal energy, the benchmark's noise-matched negatives.
It is the attack the benchmark's adaptive table runs, so
the detector learns from what an attacker who knows it would send: Madry-style adversarial training applied to
the detector (the asymmetric adversarial training of Yin et al., ICLR 2020). Training runs through
``training.fit`` (its ``transform`` hook), so the run folder, resume and calibration are those of
``fakescope train``; the adversary's settings are saved beside the run as ``adversary.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import write_json
from ..models import Net, load_checkpoint, resolve
from .adaptive import adaptive_pgd
from .attacks.stats import predict
from .protocol import gaussian_like, l2_per_image


@dataclass
class Adversary:
    """The adaptive adversary of a hardening run (ε in [0, 1] units)."""

    victim: str = "victim"
    eps: tuple[float, ...] = (2 / 255, 4 / 255, 8 / 255)
    steps: int = 10
    lams: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    share: float = 0.5  # of a batch's clean images, attacked afresh each step
    target_logit: float = 0.0  # the attacker pushes the detector's logit below this
    seed: int = 0
    tta: bool = True
    matched_noise: bool = True  # the attacked sources, with Gaussian noise of the same L2, become clean rows

    def __post_init__(self) -> None:
        self.eps, self.lams = tuple(float(e) for e in self.eps), tuple(float(v) for v in self.lams)
        if not self.eps or min(self.eps) <= 0 or max(self.eps) > 1:
            raise ValueError(f"adversary eps must lie in (0, 1], got {self.eps}")
        if self.steps < 1 or not 0 < self.share <= 1 or not self.lams:
            raise ValueError(f"adversary needs steps >= 1, 0 < share <= 1 and a λ: got {self.steps}, {self.share}, "
                             f"{self.lams}")


def detector_logit(net: Net, tta: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """The detector's logit of float [0, 1] NCHW images (flip-averaged with ``tta``), differentiable."""

    def score(x: torch.Tensor) -> torch.Tensor:
        z = net.logits(x)
        return ((z + net.logits(x.flip(3))) / 2 if tta else z).reshape(len(x)).float()

    return score


def adversary_transform(adv: Adversary, victim: Net) -> Callable[[Net], Callable[..., tuple[torch.Tensor, ...]]]:
    """``fit``'s ``transform``: given the detector in training, a batch transform swapping attacked images for
    fresh adaptive examples (the detector goes to eval mode for the attack and back to train mode after)."""
    victim = victim.eval().requires_grad_(False)

    def bind(net: Net) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng(adv.seed)
        score = detector_logit(net, adv.tta)

        def transform(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            clean, attacked = torch.nonzero(y == 0).flatten(), torch.nonzero(y == 1).flatten()
            k = min(int(round(adv.share * len(clean))), len(attacked))
            if k == 0:
                return x, y
            src = clean[torch.from_numpy(rng.choice(len(clean), k, replace=False))]
            images = _uint8_nhwc(x[src])
            eps, lam = float(rng.choice(adv.eps)), float(rng.choice(adv.lams))
            net.eval()
            try:
                made = adaptive_pgd(victim, score, images, predict(victim, images), eps, adv.target_logit,
                                    steps=adv.steps, lam=lam, batch_size=k, seed=int(rng.integers(2**31)))
            finally:
                net.train()
            out = x.clone()
            out[attacked[:k]] = _like(torch.from_numpy(made).permute(0, 3, 1, 2), x)
            if adv.matched_noise:  # the same sources plus Gaussian noise of each perturbation's L2, as clean
                noisy = gaussian_like(images, l2_per_image(images, made), int(rng.integers(2**31)))
                out[src] = _like(torch.from_numpy(noisy).permute(0, 3, 1, 2), x)
            return out, y

        return transform

    return bind


def _uint8_nhwc(x: torch.Tensor) -> np.ndarray:
    """A uint8 or [0, 1] float NCHW batch as uint8 NHWC numpy (what ``adaptive_pgd`` takes)."""
    if x.dtype != torch.uint8:
        x = torch.round(x.float().clamp(0, 1) * 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _like(u8: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW ``u8`` in ``x``'s dtype and device (float batches are [0, 1])."""
    return (u8 if x.dtype == torch.uint8 else u8.float().div(255.0)).to(x.device, x.dtype)


def harden(data: str | os.PathLike[str], init: str, out: str, adversary: Adversary | None = None,
           epochs: int = 2, lr: float = 5e-4, batch_size: int = 64, threads: int = 0, seed: int = 0,
           resume: bool = False, quiet: bool = False, **train: Any) -> dict[str, Any]:
    """Fine-tune detector ``init`` (a checkpoint of task adversarial; a guarded one gives its residual CNN) on the
    attack folder(s) ``data`` against ``adversary``; writes ``OUT/model.json`` as ``fakescope train`` does, plus
    ``OUT/adversary.json``. ``resume`` continues ``out`` with its saved adversary. ``train``: further
    ``TrainConfig`` fields (e.g. ``augment``)."""
    from ..models.guarded import residual_part
    from ..training.config import resolve_config
    from ..training.loop import fit

    run = Path(out)
    saved = run / "adversary.json"
    if resume and saved.is_file():
        adversary = Adversary(**json.loads(saved.read_text(encoding="utf-8")))
    adversary = adversary or Adversary()
    src, _ = load_checkpoint(resolve(init))
    if src.spec.arch == "guarded":
        src = residual_part(src)
    if src.spec.task != "adversarial":
        raise ValueError(f"--init {init}: a {src.spec.task} checkpoint; hardening fine-tunes an adversarial detector")
    victim, _ = load_checkpoint(resolve(adversary.victim))
    options = {"optimizer": "adam", "weight_decay": 0.0, "label_smoothing": 0.0, "augment": "negatives", **train}
    cfg = resolve_config(None, task="adversarial", data=str(data), arch=src.spec.arch,
                         arch_kwargs=dict(src.spec.arch_kwargs), init=str(init), out=str(out), epochs=epochs,
                         lr=lr, batch_size=batch_size, threads=threads, seed=seed, resume=resume or None,
                         tta=adversary.tta, **options)
    run.mkdir(parents=True, exist_ok=True)
    write_json(saved, asdict(adversary))
    return fit(cfg, quiet=quiet, transform=adversary_transform(adversary, victim))

