"""The fit loop: CPU or CUDA (bf16 autocast), one JSON line per logged step, checkpoint every epoch, resume.

``train_step`` and ``evaluate_split`` are plain functions returning dicts of metrics. Randomness is derived from
``(seed, epoch)``, so a run resumed from its last complete epoch continues exactly as if never stopped.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._version import __version__
from ..data import ImageSet, load_dataset, train_val_split
from ..data.imageset import check_balance
from ..data.tasks import task_classes
from ..data.transforms import AUGMENTS, degrade, random_flip, random_translate
from ..inference.calibration import calibrated_probs, choose_threshold, fit_temperature
from ..inference.predict import predict_logits
from ..io import append_jsonl, read_jsonl, write_bytes, write_json
from ..models import ModelSpec, Net, save_checkpoint
from ..progress import Progress, printer
from .config import TrainConfig, validation_seed
from .state import load_state, save_state


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate as a pure function of the global step (so resuming needs only the step)."""
    if cfg.schedule == "constant":
        return cfg.lr
    warm = max(1, int(total * cfg.warmup))
    if step < warm:
        return cfg.lr * (0.1 + 0.9 * step / warm)
    frac = (step - warm) / max(1, total - warm)
    return cfg.lr * (0.5 * (1 + math.cos(math.pi * frac)) * 0.99 + 0.01)


def make_optimizer(cfg: TrainConfig, net: Net) -> torch.optim.Optimizer:
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (sgd, adam)")


def loss_fn(logits: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    if logits.dim() == 1:
        return F.binary_cross_entropy_with_logits(logits, y.float() * (1 - smoothing) + smoothing / 2)
    return F.cross_entropy(logits, y, label_smoothing=smoothing)


def train_step(net: Net, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
               amp: bool) -> dict[str, float]:
    """One optimisation step on a uint8 NCHW batch; returns ``{"loss", "acc"}``."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
        z = net.logits(x)
    z = z.float()
    loss = loss_fn(z, y, cfg.label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    pred = (z > 0).long() if z.dim() == 1 else z.argmax(1)
    return {"loss": loss.item(), "acc": (pred == y).float().mean().item()}


def evaluate_split(net: Net, ds: ImageSet, tta: bool = False) -> dict[str, Any]:
    """Loss and accuracy on a held-out split (raw logits returned for calibration)."""
    z = predict_logits(net, ds.images, tta=tta)
    zt, yt = torch.from_numpy(z), torch.from_numpy(ds.labels)
    loss = loss_fn(zt, yt, 0.0).item()
    pred = (z > 0).astype(np.int64) if z.ndim == 1 else z.argmax(1)
    return {"loss": loss, "acc": float((pred == ds.labels).mean()), "logits": z}


def _subsample(ds: ImageSet, per_class: int, seed: int) -> ImageSet:
    rng = np.random.default_rng(seed + 7)
    idx = [rng.permutation(np.flatnonzero(ds.labels == c))[:per_class] for c in range(len(ds.classes))]
    return ds.subset(np.sort(np.concatenate(idx)))


def fit(cfg: TrainConfig, dataset: ImageSet | None = None, quiet: bool = False) -> dict[str, Any]:
    """Train, calibrate on validation, save ``model.safetensors/json`` in ``cfg.out``; returns final metrics."""
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    if not cfg.resume and (run / "last.json").exists():
        raise FileExistsError(f"{run} already holds a run; pass --resume to continue it or choose another --out")
    write_json(run / "config.json", cfg.to_dict())
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    if cfg.amp not in ("auto", "bf16", "off"):
        raise ValueError(f"amp must be auto, bf16 or off, got {cfg.amp!r}")
    amp = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    if cfg.augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {cfg.augment!r}")
    say = printer(quiet)

    ds = dataset if dataset is not None else load_dataset(cfg.data, cfg.task, cfg.image_size, "train",
                                                          workers=cfg.workers or None)
    if cfg.train_limit:
        ds = _subsample(ds, cfg.train_limit, cfg.seed)
    check_balance(ds)
    train, val = train_val_split(ds, cfg.val_fraction, validation_seed(cfg.to_dict()))
    say(f"data: {len(train)} train / {len(val)} validation images {train.counts()} on {device}")
    classes = task_classes(cfg.task, ds.classes)
    spec = ModelSpec(arch=cfg.arch, task=cfg.task, classes=list(classes), image_size=cfg.image_size,
                     arch_kwargs=dict(cfg.arch_kwargs))
    net = Net(spec).to(device).to(memory_format=torch.channels_last)
    opt = make_optimizer(cfg, net)
    x_all = torch.from_numpy(train.images).permute(0, 3, 1, 2).to(device).contiguous(
        memory_format=torch.channels_last)
    y_all = torch.from_numpy(train.labels).to(device)
    steps_per_epoch = len(train) // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch size {cfg.batch_size} exceeds the {len(train)} training images")
    total = steps_per_epoch * cfg.epochs
    start_epoch, step = 0, 0
    if cfg.resume and (run / "last.json").exists():
        start_epoch, step = load_state(run, net, opt)
        say(f"resumed from epoch {start_epoch} (step {step})")
    history = run / "history.jsonl"
    if start_epoch == 0 and history.exists():
        history.unlink()
    elif history.exists():  # drop step lines from the epoch that was interrupted
        kept = [r for r in read_jsonl(history) if r.get("epoch", 0) <= start_epoch]
        write_bytes(history, "".join(json.dumps(r) + "\n" for r in kept).encode())

    for epoch in range(start_epoch, cfg.epochs):
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        perm = torch.randperm(len(train), generator=gen).to(device)
        net.train()
        t0, run_loss, run_acc = time.perf_counter(), 0.0, 0.0
        with Progress(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", disable=quiet) as bar:
            for i in range(steps_per_epoch):
                idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                x = x_all[idx]
                if cfg.flip:
                    x = random_flip(x, gen)
                if cfg.translate:
                    x = random_translate(x, gen, cfg.translate)
                if cfg.augment != "none":
                    x = degrade(x, gen, y_all[idx] if cfg.augment == "negatives" else None)
                for g in opt.param_groups:
                    g["lr"] = lr_at(cfg, step, total)
                m = train_step(net, opt, x, y_all[idx], cfg, amp)
                step += 1
                run_loss, run_acc = run_loss + m["loss"], run_acc + m["acc"]
                bar.update(loss=run_loss / (i + 1), acc=run_acc / (i + 1))
                if cfg.log_every and step % cfg.log_every == 0:
                    append_jsonl(history, {"kind": "step", "epoch": epoch + 1, "step": step,
                                           "lr": opt.param_groups[0]["lr"], **m})
        train_seconds = time.perf_counter() - t0
        ev = evaluate_split(net, val)
        rec = {"kind": "epoch", "epoch": epoch + 1, "step": step, "train_loss": run_loss / steps_per_epoch,
               "train_acc": run_acc / steps_per_epoch, "val_loss": ev["loss"], "val_acc": ev["acc"],
               "train_seconds": train_seconds, "seconds": time.perf_counter() - t0}
        append_jsonl(history, rec)
        save_state(run, net, opt, epoch + 1, step)
        say(f"epoch {epoch + 1}/{cfg.epochs}: train loss {rec['train_loss']:.4f} acc {rec['train_acc']:.4f} | "
            f"val loss {ev['loss']:.4f} acc {ev['acc']:.4f} | {rec['seconds']:.1f}s")

    return finalize(run, net, val, cfg, ds.fingerprint)


def finalize(run: Path, net: Net, val: ImageSet, cfg: TrainConfig, fingerprint: str) -> dict[str, Any]:
    """Fit temperature and threshold on validation, save the exported checkpoint and curves."""
    net = net.to("cpu").to(memory_format=torch.contiguous_format)
    ev = evaluate_split(net, val, tta=cfg.tta)
    spec = net.spec
    if spec.binary:
        spec.temperature = fit_temperature(ev["logits"], val.labels)
        probs = calibrated_probs(ev["logits"], spec.temperature)
        spec.threshold = choose_threshold(probs, val.labels)
        val_acc = float(((probs >= spec.threshold).astype(int) == val.labels).mean())
    else:
        spec.temperature = fit_temperature(ev["logits"], val.labels)
        val_acc = ev["acc"]
    spec.arch_kwargs = {**spec.arch_kwargs}
    metrics = {"val_acc": val_acc, "val_loss": ev["loss"], "val_size": len(val)}
    save_checkpoint(net, run / "model", train_config=cfg.to_dict(), data_fingerprint=fingerprint,
                    metrics=metrics, tta=cfg.tta, trained_with=f"fakescope {__version__}")
    try:
        from ..evaluation.plots import plot_history

        plot_history(read_jsonl(run / "history.jsonl"), run / "curves.png")
    except ImportError:
        pass
    write_json(run / "metrics.json", metrics)
    return metrics
