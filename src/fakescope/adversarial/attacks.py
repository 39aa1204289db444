"""Attacks on a victim ``Net``: an attack registry (ART-backed), ``run_attack`` → uint8 images + stats, manifests.

Conventions: images are uint8 NHWC (the ``ImageSet`` format); attacks see float [0, 1] NCHW, which the victim
``Net`` normalises itself. ``eps`` is in [0, 1] units (8/255 = 8 grey levels). Bounded attacks (fgsm, bim, pgd,
pgd-l2, square) keep ``eps`` as a hard budget; minimum-norm attacks (deepfool, cw-l2 and their ``-fast`` twins)
ignore it and record ``eps: null``. ART is imported lazily, so this module imports without it.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..infer import predict_logits
from ..io import atomic_open, sha256_file, write_json
from ..models.net import Net
from ..registry import Registry

LINF_EPS = 8 / 255  # default L∞ budget
L2_EPS = 0.5  # default L2 budget ([0, 1] units, the usual CIFAR-10 value)
ART_BATCH = 1 << 16  # run_attack already chunks; ART processes each chunk in one go
MANIFEST_FORMAT = "fakescope-attack/1"


class VictimLogits(nn.Module):
    """(N, C) logits of a victim ``Net`` for float [0, 1] NCHW input; a binary net's logit z becomes [-z/2, z/2].

    Input goes channels_last (ART hands over NCHW-contiguous copies; convolutions run ~1.5x faster on CPU).
    """

    def __init__(self, net: Net) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x)
        return torch.cat([-z / 2, z / 2], dim=1) if z.shape[1] == 1 else z


@dataclass
class Attack:
    """A configured attack: ``generate(x, y)`` maps float32 [0, 1] NCHW images and int labels to adversarials."""

    name: str
    norm: str  # "linf" | "l2"
    eps: float | None  # hard budget for bounded attacks; None for minimum-norm attacks
    params: dict[str, Any]
    generate: Callable[[np.ndarray, np.ndarray], np.ndarray] = field(repr=False)

    @property
    def bounded(self) -> bool:
        return self.eps is not None

    def describe(self) -> dict[str, Any]:
        return {"attack": self.name, "norm": self.norm, "eps": self.eps, "parameters": dict(self.params)}


ATTACKS: Registry[Attack] = Registry("attack")
register_attack = ATTACKS.register


def create_attack(name: str, victim_net: Net, eps: float | None = None, **kw: Any) -> Attack:
    """Configure attack ``name`` against ``victim_net``; ``eps=None`` means the attack's default budget."""
    return ATTACKS.create(name, victim_net=victim_net, eps=eps, **kw)


def list_attacks() -> list[str]:
    return ATTACKS.names()


def art_classifier(victim_net: Net) -> Any:
    """Wrap ``victim_net`` as an ART ``PyTorchClassifier`` on float [0, 1] NCHW input (the Net normalises)."""
    from art.estimators.classification import PyTorchClassifier

    victim_net.eval()
    device = next(victim_net.parameters()).device
    s = victim_net.spec.image_size
    return PyTorchClassifier(model=VictimLogits(victim_net), loss=nn.CrossEntropyLoss(), input_shape=(3, s, s),
                             nb_classes=max(2, len(victim_net.spec.classes)), clip_values=(0.0, 1.0),
                             device_type="gpu" if device.type == "cuda" else "cpu")


def _art(name: str, norm: str, eps: float | None, victim_net: Net, cls_path: str, params: dict[str, Any]) -> Attack:
    """An ``Attack`` running ART class ``art.attacks.evasion.<cls_path>`` with ``params`` (labels one-hot).

    ``params`` stay JSON-safe for the manifest: ``norm`` is ``"inf"`` or ``2`` and becomes ``np.inf`` for ART.
    """
    import art.attacks.evasion as evasion

    n_cls = max(2, len(victim_net.spec.classes))
    cls = getattr(evasion, cls_path)
    kw = {k: np.inf if (k, v) == ("norm", "inf") else v for k, v in params.items()}
    if "verbose" in inspect.signature(cls.__init__).parameters:
        kw["verbose"] = False
    impl = cls(art_classifier(victim_net), **kw, batch_size=ART_BATCH)

    def generate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with frozen(victim_net):
            return impl.generate(x=x, y=np.eye(n_cls, dtype=np.float32)[y]).astype(np.float32)

    return Attack(name, norm, eps, params, generate)


@contextlib.contextmanager
def frozen(net: nn.Module) -> Iterator[None]:
    """Parameters stop requiring grad meanwhile: ART's ``loss_gradient`` calls ``loss.backward()``, which would
    also compute every weight gradient at each step (~1/3 of PGD's time on CPU); input gradients are unchanged."""
    flags = [p.requires_grad for p in net.parameters()]
    for p in net.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(net.parameters(), flags, strict=True):
            p.requires_grad_(f)


@register_attack("fgsm", doc="Fast gradient sign method: one L∞ step of size eps (default 8/255).")
def _fgsm(victim_net: Net, eps: float | None = None) -> Attack:
    eps = LINF_EPS if eps is None else eps
    return _art("fgsm", "linf", eps, victim_net, "FastGradientMethod", {"norm": "inf", "eps": eps, "eps_step": eps})


@register_attack("bim", doc="Basic iterative method (L∞): 10 steps of eps/4, no random start.")
def _bim(victim_net: Net, eps: float | None = None, max_iter: int = 10, eps_step: float | None = None) -> Attack:
    eps = LINF_EPS if eps is None else eps
    params = {"eps": eps, "eps_step": eps / 4 if eps_step is None else eps_step, "max_iter": max_iter}
    return _art("bim", "linf", eps, victim_net, "BasicIterativeMethod", params)


def _pgd(name: str, norm: str, default_eps: float, victim_net: Net, eps: float | None, max_iter: int,
         eps_step: float | None, num_random_init: int) -> Attack:
    eps = default_eps if eps is None else eps
    params = {"norm": "inf" if norm == "linf" else 2, "eps": eps, "max_iter": max_iter,
              "eps_step": 2.5 * eps / max_iter if eps_step is None else eps_step,  # Madry et al.'s rule
              "num_random_init": num_random_init}
    return _art(name, norm, eps, victim_net, "ProjectedGradientDescent", params)


@register_attack("pgd", doc="Projected gradient descent (L∞): 10 steps of 2.5·eps/10 from one random start.")
def _pgd_linf(victim_net: Net, eps: float | None = None, max_iter: int = 10, eps_step: float | None = None,
              num_random_init: int = 1) -> Attack:
    return _pgd("pgd", "linf", LINF_EPS, victim_net, eps, max_iter, eps_step, num_random_init)


@register_attack("pgd-l2", doc="Projected gradient descent (L2, default eps 0.5): 10 steps from one random start.")
def _pgd_l2(victim_net: Net, eps: float | None = None, max_iter: int = 10, eps_step: float | None = None,
            num_random_init: int = 1) -> Attack:
    return _pgd("pgd-l2", "l2", L2_EPS, victim_net, eps, max_iter, eps_step, num_random_init)


@register_attack("deepfool", doc="ART DeepFool (minimum L2; 50 iterations, overshoot 0.02). Slow: see deepfool-fast.")
def _deepfool(victim_net: Net, eps: float | None = None, max_iter: int = 50, overshoot: float = 0.02,
              nb_grads: int = 10) -> Attack:
    params = {"max_iter": max_iter, "epsilon": overshoot, "nb_grads": nb_grads}
    return _art("deepfool", "l2", None, victim_net, "DeepFool", params)


@register_attack("cw-l2", doc="ART Carlini-Wagner L2 (5 binary-search steps x 10 line-search iterations). Slow.")
def _cw_l2(victim_net: Net, eps: float | None = None, confidence: float = 0.0, learning_rate: float = 0.01,
           binary_search_steps: int = 5, max_iter: int = 10, initial_const: float = 0.1) -> Attack:
    params = {"confidence": confidence, "learning_rate": learning_rate, "binary_search_steps": binary_search_steps,
              "max_iter": max_iter, "initial_const": initial_const}
    return _art("cw-l2", "l2", None, victim_net, "CarliniL2Method", params)


@register_attack("square", doc="Square attack (L∞, black-box, queries only): 100 iterations, p_init 0.8.")
def _square(victim_net: Net, eps: float | None = None, max_iter: int = 100, p_init: float = 0.8,
            nb_restarts: int = 1) -> Attack:
    eps = LINF_EPS if eps is None else eps
    params = {"norm": "inf", "eps": eps, "max_iter": max_iter, "p_init": p_init, "nb_restarts": nb_restarts}
    return _art("square", "linf", eps, victim_net, "SquareAttack", params)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (ART uses it) and torch's, restoring both afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float [0, 1] NCHW → uint8 NHWC exactly as a user saving images would: rint(x·255), then clip."""
    return np.clip(np.rint(np.asarray(x, np.float64) * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def predict(victim_net: Net, images: np.ndarray) -> np.ndarray:
    """Predicted class per uint8 NHWC image (binary nets: logit > 0)."""
    z = predict_logits(victim_net, images)
    return (z > 0).astype(np.int64) if z.ndim == 1 else z.argmax(1)


def _check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    a = np.asarray(images)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"{name} must be uint8 NHWC RGB, got {a.dtype} {a.shape}")
    return a


def run_attack(victim_net: Net, images: np.ndarray, labels: np.ndarray, attack: str | Attack = "pgd",
               eps: float | None = None, batch_size: int = 256, seed: int = 0,
               **attack_kw: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Attack uint8 NHWC ``images`` (true ``labels``) → (uint8 NHWC adversarials, ``attack_stats``).

    Minimum-norm attacks leave images the victim already misclassifies unchanged (they are adversarial already).
    """
    images = _check_images(images)
    labels = np.asarray(labels, np.int64)
    if isinstance(attack, Attack) and (attack_kw or eps is not None):
        raise ValueError("pass eps and attack options to create_attack, not with a configured Attack")
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    if images.shape[1:3] != (victim_net.spec.image_size,) * 2:
        raise ValueError(f"images are {images.shape[1]}x{images.shape[2]}; resize them to the victim's "
                         f"{victim_net.spec.image_size}x{victim_net.spec.image_size} first")
    was_training = victim_net.training
    victim_net.eval()
    out = images.copy()
    try:
        with seeded(seed):
            atk = attack if isinstance(attack, Attack) else create_attack(attack, victim_net, eps=eps, **attack_kw)
            for i in range(0, len(images), batch_size):
                todo = np.arange(len(images))[i:i + batch_size]
                if not atk.bounded:
                    todo = todo[predict(victim_net, images[todo]) == labels[todo]]
                if len(todo):
                    x = images[todo].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
                    out[todo] = to_uint8(atk.generate(x, labels[todo]))
        return out, attack_stats(victim_net, images, out, labels)
    finally:
        victim_net.train(was_training)


def ssim(a: np.ndarray, b: np.ndarray, win: int = 11, sigma: float = 1.5, chunk: int = 512) -> np.ndarray:
    """Per-image SSIM (Wang et al. 2004) of uint8 NHWC images: Gaussian window, data range 1, channel-averaged.

    Computed on the valid region (no padding); the window shrinks to the image size for images under 11 px.
    """
    a, b = _check_images(a, "a"), _check_images(b, "b")
    win = min(win, a.shape[1], a.shape[2])
    win -= 1 - win % 2
    r = torch.arange(win, dtype=torch.float64) - (win - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).expand(3, 1, win, win)
    c1, c2 = 0.01**2, 0.03**2
    out = []
    for i in range(0, len(a), chunk):
        x = torch.from_numpy(a[i:i + chunk]).permute(0, 3, 1, 2).double() / 255.0
        y = torch.from_numpy(b[i:i + chunk]).permute(0, 3, 1, 2).double() / 255.0
        f = lambda t: F.conv2d(t, w, groups=3)  # noqa: E731
        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        out.append(m.mean(dim=(1, 2, 3)))
    return torch.cat(out).numpy() if out else np.zeros(0)


def perturbation_stats(originals: np.ndarray, adv: np.ndarray) -> dict[str, Any]:
    """L∞ / L2 ([0, 1] units), PSNR (dB, over changed images) and SSIM of uint8 ``adv`` against ``originals``."""
    o, a = _check_images(originals, "originals"), _check_images(adv, "adv")
    if o.shape != a.shape:
        raise ValueError(f"originals {o.shape} and adversarials {a.shape} differ in shape")
    d = (a.astype(np.float64) - o.astype(np.float64)).reshape(len(o), -1) / 255.0
    linf = np.abs(d).max(axis=1, initial=0.0)
    l2 = np.sqrt((d * d).sum(axis=1))
    mse = (d * d).mean(axis=1) if d.shape[1] else np.zeros(len(o))
    changed = mse > 0
    psnr = 10 * np.log10(1.0 / mse[changed])
    s = ssim(o, a)

    def agg(v: np.ndarray, fn: Callable[[np.ndarray], Any]) -> float | None:
        return float(fn(v)) if len(v) else None

    return {"linf_mean": agg(linf, np.mean), "linf_max": agg(linf, np.max), "l2_mean": agg(l2, np.mean),
            "l2_median": agg(l2, np.median), "l2_max": agg(l2, np.max), "psnr_db_mean": agg(psnr, np.mean),
            "ssim_mean": agg(s, np.mean), "n_unchanged": int((~changed).sum())}


def attack_stats(victim_net: Net, originals: np.ndarray, adv: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy and perturbation figures, computed on the STORED uint8 images (i.e. after rounding).

    ``success_rate`` counts only images the victim classified correctly before the attack.
    """
    labels = np.asarray(labels, np.int64)
    pc, pa = predict(victim_net, originals), predict(victim_net, adv)
    correct = pc == labels
    n = len(labels)
    return {"n": n, "n_correct": int(correct.sum()),
            "clean_accuracy": float(correct.mean()) if n else None,
            "adversarial_accuracy": float((pa == labels).mean()) if n else None,
            "success_rate": float((pa[correct] != labels[correct]).mean()) if correct.any() else None,
            **perturbation_stats(originals, adv)}


def checkpoint_hashes(checkpoint: str | os.PathLike[str]) -> dict[str, str]:
    """SHA-256 of a victim checkpoint's weights file and JSON (bundled name or path)."""
    from ..models.checkpoint import read_metadata, resolve

    jpath = resolve(checkpoint)
    wname = read_metadata(jpath)["weights_file"]
    return {"victim_checkpoint": str(checkpoint), "victim_weights_sha256": sha256_file(jpath.parent / wname),
            "victim_json_sha256": sha256_file(jpath)}


def make_manifest(attack: Attack, stats: dict[str, Any], seed: int, victim_net: Net | None = None,
                  victim_checkpoint: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The manifest describing one attack run (``write_attack`` adds n, version and file hashes)."""
    doc: dict[str, Any] = {**attack.describe(), "seed": seed, "stats": dict(stats)}
    if victim_net is not None:
        doc["victim_spec"] = victim_net.spec.to_dict()
    if victim_checkpoint is not None:
        doc.update(checkpoint_hashes(victim_checkpoint))
    return doc


def write_attack(out_dir: str | os.PathLike[str], originals: np.ndarray, adv: np.ndarray, labels: np.ndarray,
                 manifest: dict[str, Any]) -> Path:
    """Write ``originals.npz``, ``attacked.npz`` (``images`` uint8 NHWC + ``labels``) and, last, ``manifest.json``."""
    out = Path(out_dir)
    o, a = _check_images(originals, "originals"), _check_images(adv, "adv")
    labels = np.asarray(labels, np.int64)
    if o.shape != a.shape or len(labels) != len(o):
        raise ValueError(f"shapes differ: originals {o.shape}, attacked {a.shape}, labels {labels.shape}")
    files = {}
    for name, imgs in (("originals.npz", o), ("attacked.npz", a)):
        with atomic_open(out / name) as fh:
            np.savez(fh, images=imgs, labels=labels)
        files[name] = sha256_file(out / name)
    doc = {"format": MANIFEST_FORMAT, **manifest, "n": len(o), "fakescope_version": __version__, "files": files}
    write_json(out / "manifest.json", doc)
    return out / "manifest.json"


def read_attack(out_dir: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(originals, attacked, labels, manifest) from a folder written by ``write_attack``."""
    out = Path(out_dir)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    arrays = []
    for name in ("originals.npz", "attacked.npz"):
        with np.load(out / name, allow_pickle=False) as z:
            arrays.append((z["images"], z["labels"].astype(np.int64)))
    (o, lo), (a, la) = arrays
    if not np.array_equal(lo, la):
        raise ValueError(f"{out}: originals.npz and attacked.npz hold different labels")
    return o, a, lo, manifest


def verify_manifest(out_dir: str | os.PathLike[str], victim_net: Net | None = None,
                    victim_checkpoint: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """Recompute a manifest's figures from its files → {name: |recorded - recomputed|} (all 0.0 when it holds).

    Checks (1.0 = mismatch): file hashes, ``n``, and, given ``victim_checkpoint``, its SHA-256. Perturbation stats
    are always recomputed; accuracy stats only with ``victim_net``.
    """
    out = Path(out_dir)
    o, a, labels, manifest = read_attack(out)
    diffs: dict[str, float] = {f"sha256:{k}": float(sha256_file(out / k) != v) for k, v in manifest["files"].items()}
    diffs["manifest_n"] = float(manifest["n"] != len(o))
    recorded = manifest["stats"]
    fresh = attack_stats(victim_net, o, a, labels) if victim_net is not None else perturbation_stats(o, a)
    for k, v in fresh.items():
        r = recorded.get(k)
        if v is None or r is None:
            diffs[k] = 0.0 if v is None and r is None else math.inf
        else:
            diffs[k] = abs(float(r) - float(v))
    if victim_checkpoint is not None:
        h = checkpoint_hashes(victim_checkpoint)["victim_weights_sha256"]
        diffs["victim_weights_sha256"] = float(manifest.get("victim_weights_sha256") != h)
    return diffs
