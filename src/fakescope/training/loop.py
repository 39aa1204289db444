"""The fit loop: CPU or CUDA (bf16 autocast), one JSON line per logged step, checkpoint every epoch, resume.

``train_step`` (one optimisation step) and ``run_epoch`` (one pass over a sequence of batches) are the one training
loop: ``fit``, the adversarial fine-tuning of the evasion study and the seed-recipe loop of ``reproduce adversarial``
all train through them. ``train_step`` and ``evaluate_split`` return dicts of metrics. Randomness is derived from
``(seed, epoch)``, so a run resumed from its last complete epoch continues exactly as if never stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._version import __version__
from ..data import ImageSet, load_dataset, train_val_split
from ..data.imageset import check_balance, subsample_per_class
from ..data.tasks import task_classes
from ..data.transforms import degrade, random_flip, random_translate
from ..inference.calibration import calibrate
from ..inference.predict import predict_logits
from ..io import append_jsonl, read_jsonl, write_json
from ..models import ModelSpec, Net, load_checkpoint, resolve, save_checkpoint
from ..models.guarded import residual_part
from ..progress import Progress, counter, printer
from . import distributed, streaming
from .config import TrainConfig, resume_changes, saved_config, validation_seed
from .state import load_state, record_data, resume_history, save_state


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


def use_amp(cfg: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast: ``amp`` bf16 everywhere, ``auto`` on CUDA only."""
    return cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")


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
    """One optimisation step on an NCHW batch (uint8, or float in [0, 1]); returns ``{"loss", "acc"}``."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
        z = net.logits(x)
    z = z.float()
    loss = loss_fn(z, y, cfg.label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    pred = (z > 0).long() if z.dim() == 1 else z.argmax(1)
    return {"loss": loss.item(), "acc": (pred == y).float().mean().item()}


Batch = tuple[torch.Tensor, torch.Tensor]
BatchTransform = Callable[[torch.Tensor, torch.Tensor], Batch]


def run_epoch(net: Net, opt: torch.optim.Optimizer, batches: Iterable[Batch], cfg: TrainConfig, amp: bool = False,
              lr_schedule: Callable[[int], float] | None = None,
              batch_transform: Callable[[torch.Tensor, torch.Tensor], Batch] | None = None,
              on_step: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """One pass of ``train_step`` over ``batches`` ((x, y) pairs) in train mode; returns each step's metrics.

    Per batch, in this order: ``batch_transform(x, y)`` gives the batch to train on (augmentation, adversarial
    examples; it must leave the model in train mode), ``lr_schedule(i)`` sets the learning rate of step ``i``
    (0-based within this epoch), the step runs, then ``on_step(i, metrics)`` is called (logging, progress).
    """
    net.train()
    steps = []
    for i, (x, y) in enumerate(batches):
        if batch_transform is not None:
            x, y = batch_transform(x, y)
        if lr_schedule is not None:
            lr = lr_schedule(i)
            for g in opt.param_groups:
                g["lr"] = lr
        steps.append(train_step(net, opt, x, y, cfg, amp))
        if on_step is not None:
            on_step(i, steps[-1])
    return steps


def evaluate_split(net: Net, ds: ImageSet, tta: bool = False) -> dict[str, Any]:
    """Loss and accuracy on a held-out split (raw logits returned for calibration)."""
    z = predict_logits(net, ds.images, tta=tta)
    zt, yt = torch.from_numpy(z), torch.from_numpy(ds.labels)
    loss = loss_fn(zt, yt, 0.0).item()
    pred = (z > 0).astype(np.int64) if z.ndim == 1 else z.argmax(1)
    return {"loss": loss, "acc": float((pred == ds.labels).mean()), "logits": z}


@dataclass
class _Run:
    """What the epochs of one ``fit`` share."""

    dir: Path
    cfg: TrainConfig
    net: Net
    opt: torch.optim.Optimizer
    train: ImageSet | streaming.ShardTrain
    val: ImageSet
    device: torch.device
    amp: bool
    quiet: bool
    world: distributed.World = distributed.World()
    model: torch.nn.Module | None = None  # what trains: ``net``, or ``net`` behind DDP under torchrun
    extra: BatchTransform | None = None  # after augmentation (``fit``'s ``transform``)


def fit(cfg: TrainConfig, dataset: ImageSet | None = None, quiet: bool = False,
        transform: Callable[[Net], BatchTransform] | None = None) -> dict[str, Any]:
    """Train, calibrate on validation, save ``model.safetensors/json`` in ``cfg.out``; returns final metrics.

    With ``cfg.resume`` the run folder's ``config.json`` rules: a value of ``cfg`` that differs from it is refused
    unless it cannot change the data or the split (``config.RESUMABLE``: more epochs, threads, workers, device,
    amp); allowed changes are printed and recorded (a ``"resume"`` line in ``history.jsonl``). The data must be
    the same too (``"data"`` line: fingerprint and split digest). Build a resumed config with
    ``resolve_config(out=..., resume=True)`` to take everything else from the run.

    For the run only, torch's global RNG is seeded with ``cfg.seed`` and its thread count set to ``cfg.threads``
    (0: left as it is); both are restored afterwards, also when training fails. Under torchrun (``WORLD_SIZE`` >
    1) every rank trains a DistributedDataParallel replica and rank 0 alone writes (``training.distributed``).

    ``transform(net)``, called once with the model being trained, gives a batch transform applied after the
    augmentations (e.g. ``adversarial.hardening``'s adaptive examples made against ``net`` as it trains).
    """
    with distributed.session(pick_device(cfg.device)) as world:
        return _fit(cfg, dataset, quiet or not world.is_main, world, transform)


def _fit(cfg: TrainConfig, dataset: ImageSet | None, quiet: bool, world: distributed.World,
         transform: Callable[[Net], BatchTransform] | None = None) -> dict[str, Any]:
    device = world.device
    say = printer(quiet)
    with world.main_first():  # rank 0 prepares the folder and fills the decode cache, then the others read it
        run, changes = _prepare_dir(cfg, world.size) if world.is_main else (Path(cfg.out), {})
    with _torch_globals(cfg, device):
        with world.main_first():
            if streaming.is_shards(cfg, dataset):
                ds, train, val = streaming.load_shards(cfg)
            else:
                with _decode_reporter(cfg, say, quiet) as on_decode:
                    ds, train, val = _load_data(cfg, dataset, on_decode)
        say(f"data: {len(train)} train / {len(val)} validation images {train.counts()} on {device}"
            + (f", {world.size} processes" if world.active else ""))
        net, opt = _build(cfg, ds.classes, device)
        with world.main_first():  # the others load the state rank 0 resumed from (only rank 0 trims the history)
            start_epoch, step = (resume_history(run, cfg.resume, net, opt, say) if world.is_main else
                                 load_state(run, net, opt) if cfg.resume and (run / "last.json").exists() else (0, 0))
        world.same_everywhere((start_epoch, step), "the epoch and step to resume from")
        if world.is_main:
            record_data(run, ds, train, val, start_epoch, step, changes, say)
        r = _Run(run, cfg, net, opt, train, val, device, use_amp(cfg, device), quiet, world, world.replicate(net),
                 None if transform is None else transform(net))
        data = streaming.batches(train, device, world)  # in-memory tensors, or shards streamed from disk
        for epoch in range(start_epoch, cfg.epochs):
            step = _fit_epoch(r, data, epoch, step, say)
        with world.main_first():
            metrics = finalize(run, net, val, cfg, ds.fingerprint) if world.is_main else None
        return world.share(metrics, ("val_acc", "val_loss", "val_size"))


def _prepare_dir(cfg: TrainConfig, world_size: int = 1) -> tuple[Path, dict[str, list[Any]]]:
    """``cfg.out``, created, refusing to overwrite a finished or interrupted run unless resuming, and refusing a
    resume that changes the data or the split; writes ``config.json`` (with ``world_size``, the number of processes
    it runs on: a record, not a setting). Returns the folder and what resuming changes (``config.resume_changes``)."""
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    if not cfg.resume and (run / "last.json").exists():
        raise FileExistsError(f"{run} already holds a run; pass --resume to continue it or choose another --out")
    changes: dict[str, list[Any]] = {}
    saved = saved_config(run) if cfg.resume else None
    if saved is not None:
        last = run / "last.json"
        done = int(json.loads(last.read_text(encoding="utf-8")).get("epoch", 0)) if last.exists() else 0
        changes = resume_changes(saved, cfg, done, str(run))
    write_json(run / "config.json", {**cfg.to_dict(), "world_size": world_size})
    return run, changes


@contextmanager
def _torch_globals(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (CPU, and CUDA when training there) with ``cfg.seed`` and use ``cfg.threads``
    threads inside the block; restore the previous RNG state and thread count on exit."""
    threads = torch.get_num_threads()
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
        if cuda:
            torch.manual_seed(cfg.seed)
        else:  # the CPU generator only: CUDA's is neither used nor forked
            torch.random.default_generator.manual_seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        try:
            yield
        finally:
            if cfg.threads:
                torch.set_num_threads(threads)


def _load_data(cfg: TrainConfig, dataset: ImageSet | None,
               on_decode: Callable[[int, int], None] | None = None) -> tuple[ImageSet, ImageSet, ImageSet]:
    """The training data (at most ``cfg.train_limit`` images per class: a folder decodes only those) and its
    train / validation split."""
    ds = dataset if dataset is not None else load_dataset(cfg.data, cfg.task, cfg.image_size, "train",
                                                          workers=cfg.workers or None, progress=on_decode,
                                                          per_class=cfg.train_limit, seed=cfg.seed)
    ds = subsample_per_class(ds, cfg.train_limit, cfg.seed)  # the same choice again: a no-op on a limited folder
    check_balance(ds)
    train, val = train_val_split(ds, cfg.val_fraction, validation_seed(cfg.to_dict()))
    if len(train) < cfg.batch_size:
        raise ValueError(f"batch size {cfg.batch_size} exceeds the {len(train)} training images")
    return ds, train, val


@contextmanager
def _decode_reporter(cfg: TrainConfig, say: Callable[[str], None],
                     quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` for decoding the training files: one line when it starts, then a bar."""
    with counter("decoding", disable=quiet) as tick:
        started: list[bool] = []

        def on_decode(done: int, total: int) -> None:
            if not started:
                started.append(True)
                say(f"data: {total} images from the decode cache" if done >= total else
                    f"data: decoding {total} images of {cfg.data} ...")
            tick(done, total)

        yield on_decode


def _build(cfg: TrainConfig, data_classes: list[str], device: torch.device) -> tuple[Net, torch.optim.Optimizer]:
    """A freshly initialised model (from torch's global RNG, or ``cfg.init``'s weights) on ``device``, and its
    optimizer."""
    spec = ModelSpec(arch=cfg.arch, task=cfg.task, classes=task_classes(cfg.task, data_classes),
                     image_size=cfg.image_size, arch_kwargs=dict(cfg.arch_kwargs))
    net = Net(spec)
    if cfg.init:
        _init_from(net, cfg.init)
    net = net.to(device).to(memory_format=torch.channels_last)
    return net, make_optimizer(cfg, net)


def _init_from(net: Net, checkpoint: str) -> None:
    """Load ``checkpoint``'s weights into ``net``, refusing another architecture, width or class list (a guarded
    checkpoint gives its residual CNN)."""
    src, _ = load_checkpoint(resolve(checkpoint))
    if src.spec.arch == "guarded" and net.spec.arch != "guarded":  # fine-tune the residual CNN inside it
        src = residual_part(src)
    a, b = net.spec, src.spec
    if (a.arch, a.arch_kwargs, a.classes) != (b.arch, b.arch_kwargs, b.classes):
        raise ValueError(f"--init {checkpoint}: a {b.arch} {b.arch_kwargs} model of classes {b.classes}; this run "
                         f"trains a {a.arch} {a.arch_kwargs} model of classes {a.classes}")
    net.load_state_dict(src.state_dict())


def _augmenter(cfg: TrainConfig, gen: torch.Generator, extra: BatchTransform | None = None) -> BatchTransform:
    """The batch transform of ``cfg``'s augmentations (flip, translate, degradations), drawn from ``gen``, then
    ``extra``."""

    def augment(x: torch.Tensor, y: torch.Tensor) -> Batch:
        if cfg.flip:
            x = random_flip(x, gen)
        if cfg.translate:
            x = random_translate(x, gen, cfg.translate)
        if cfg.augment != "none":
            x = degrade(x, gen, y if cfg.augment == "negatives" else None)
        return (x, y) if extra is None else extra(x, y)

    return augment


def _fit_epoch(r: _Run, data: streaming.TensorBatches | streaming.ShardBatches, epoch: int, start: int,
               say: Callable[[str], None]) -> int:
    """Train epoch ``epoch`` (0-based) from global step ``start``, validate, log and save state; the new step."""
    cfg = r.cfg
    gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
    n_steps = len(r.train) // cfg.batch_size
    total = n_steps * cfg.epochs
    history = r.dir / "history.jsonl"
    batches = data.epoch(gen, cfg.batch_size, n_steps)  # draws the epoch's permutation from gen first
    t0, sums = time.perf_counter(), {"loss": 0.0, "acc": 0.0}
    with Progress(n_steps, f"epoch {epoch + 1}/{cfg.epochs}", disable=r.quiet) as bar:

        def log(i: int, m: dict[str, float]) -> None:
            m = r.world.mean(m)  # under torchrun: the global batch's loss and accuracy
            sums["loss"], sums["acc"] = sums["loss"] + m["loss"], sums["acc"] + m["acc"]
            bar.update(loss=sums["loss"] / (i + 1), acc=sums["acc"] / (i + 1))
            if r.world.is_main and cfg.log_every and (start + i + 1) % cfg.log_every == 0:
                append_jsonl(history, {"kind": "step", "epoch": epoch + 1, "step": start + i + 1,
                                       "lr": r.opt.param_groups[0]["lr"], **m})

        steps = run_epoch(r.net if r.model is None else r.model, r.opt, batches, cfg, r.amp,
                          lr_schedule=lambda i: lr_at(cfg, start + i, total),
                          batch_transform=_augmenter(cfg, r.world.augment_generator(gen, cfg.seed, epoch), r.extra),
                          on_step=log)
    step = start + len(steps)
    train_seconds = time.perf_counter() - t0
    ev = r.world.evaluate(evaluate_split, r.net, r.val)
    rec = {"kind": "epoch", "epoch": epoch + 1, "step": step, "train_loss": sums["loss"] / n_steps,
           "train_acc": sums["acc"] / n_steps, "val_loss": ev["loss"], "val_acc": ev["acc"],
           "train_seconds": train_seconds, "seconds": time.perf_counter() - t0, "world_size": r.world.size}
    if r.world.is_main:
        append_jsonl(history, rec)
        save_state(r.dir, r.net, r.opt, epoch + 1, step)
    say(f"epoch {epoch + 1}/{cfg.epochs}: train loss {rec['train_loss']:.4f} acc {rec['train_acc']:.4f} | "
        f"val loss {ev['loss']:.4f} acc {ev['acc']:.4f} | {rec['seconds']:.1f}s")
    return step


def finalize(run: Path, net: Net, val: ImageSet, cfg: TrainConfig, fingerprint: str) -> dict[str, Any]:
    """Calibrate (temperature, and the threshold of binary models) on validation, save the exported checkpoint
    and the curves."""
    net = net.to("cpu").to(memory_format=torch.contiguous_format)
    ev = evaluate_split(net, val, tta=cfg.tta)
    cal = calibrate(ev["logits"], val.labels)
    net.spec.temperature = cal.temperature
    if cal.threshold is not None:
        net.spec.threshold = cal.threshold
    net.spec.arch_kwargs = {**net.spec.arch_kwargs}
    metrics = {"val_acc": cal.val_acc, "val_loss": ev["loss"], "val_size": len(val)}
    save_checkpoint(net, run / "model", train_config=cfg.to_dict(), data_fingerprint=fingerprint,
                    metrics=metrics, tta=cfg.tta, trained_with=f"fakescope {__version__}")
    try:
        from ..evaluation.plots import plot_history

        plot_history(read_jsonl(run / "history.jsonl"), run / "curves.png")
    except ImportError:
        pass
    write_json(run / "metrics.json", metrics)
    return metrics
