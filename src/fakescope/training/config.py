"""Training configuration: defaults, then a config file (JSON or TOML), then flags; on resume, the run's own
``config.json`` instead of the defaults, and only changes that leave the data and the split alone.

Importing this module costs no torch (``fakescope train --help`` shows ``TrainConfig``'s defaults from it).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from ..data.tasks import check_task

SCHEDULES = ("onecycle", "constant")
OPTIMIZERS = ("sgd", "adam")
AMP_MODES = ("auto", "bf16", "off")
DEVICES = ("auto", "cpu", "cuda")  # and cuda:N


@dataclass
class TrainConfig:
    task: str = "synthetic"  # synthetic | adversarial | classify
    data: str = ""
    arch: str = "fast"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 32
    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "sgd"  # sgd (nesterov) | adam
    lr: float = 0.1
    schedule: str = "onecycle"  # onecycle | constant
    warmup: float = 0.2  # fraction of steps spent warming up (onecycle)
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    flip: bool = True
    translate: int = 0  # random shifts of up to this many pixels (reflect padding)
    augment: str = "none"  # none | robust (JPEG/blur/noise/rescale on half the images) | negatives (label 0 only)
    val_fraction: float = 0.05
    train_limit: int = 0  # >0: use at most this many training images per class (seeded)
    seed: int = 0
    split_seed: int | None = None  # seed of the validation split (default: seed); equal across ensemble members
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto (bf16 autocast on CUDA only) | bf16 (also on CPU: fast with AMX) | off
    threads: int = 0  # 0 = torch default
    workers: int = 0  # decode processes, 0 = auto
    tta: bool = True  # average with the horizontal flip at evaluation
    out: str = "runs/train"
    init: str = ""  # start from this checkpoint's weights (same architecture and classes): fine-tuning
    resume: bool = False
    log_every: int = 50

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """A ``ValueError`` naming the field and its allowed values for an unknown choice."""
        from ..data.transforms import AUGMENTS  # torch: imported when a config is built, not with this module

        check_task(self.task)
        for name, allowed in (("schedule", SCHEDULES), ("optimizer", OPTIMIZERS), ("augment", AUGMENTS),
                              ("amp", AMP_MODES)):
            _check_choice(name, getattr(self, name), allowed)
        if not (self.device in DEVICES or _is_cuda_index(self.device)):
            raise ValueError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _is_cuda_index(device: Any) -> bool:
    return isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit()


def validation_seed(config: dict[str, Any]) -> int | None:
    """Seed of a run's validation split: ``split_seed`` where set, else ``seed`` (a ``TrainConfig`` as a dict, or
    the ``train_config`` stored in a checkpoint). ``fit`` splits with it; ``fakescope ensemble`` compares it."""
    split = config.get("split_seed")
    return config.get("seed") if split is None else split


def load_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a config file must hold one object/table")
    return data


def resolve_config(file: str | Path | None = None, **flags: Any) -> TrainConfig:
    """Defaults ← config file ← flags (``None`` flags are ignored). Unknown keys are an error.

    With ``resume`` the base is the run's saved ``config.json`` (in ``out``) instead of the defaults: what is not
    given again is what the run was started with. ``fit`` then refuses any given value that would change the data
    or the split (see ``resume_changes``).
    """
    given: dict[str, Any] = {}
    if file:
        given.update(load_config_file(file))
    given.update({k: v for k, v in flags.items() if v is not None})
    _check_keys(given, "config")
    merged: dict[str, Any] = {}
    if given.get("resume"):
        merged.update(saved_config(given.get("out", TrainConfig.out)) or {})
    merged.update(given)
    return TrainConfig(**merged)


def _check_keys(d: dict[str, Any], what: str) -> None:
    unknown = set(d) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ValueError(f"unknown {what} keys: {sorted(unknown)}")


# What a resumed run may change: none of these alter the images, the labels or the validation split.
RESUMABLE = ("epochs", "threads", "workers", "device", "amp", "log_every", "resume")
_FLAGS = {"arch_kwargs": "--width", "flip": "--no-flip", "tta": "--no-tta"}


def flag_name(name: str) -> str:
    """The ``fakescope train`` flag that sets config field ``name``."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


RECORDED_KEYS = ("world_size",)  # written into config.json beside the settings (training.loop._prepare_dir)


def saved_config(out: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``config.json`` a run folder was started with (``None`` when there is none)."""
    path = Path(out) / "config.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read the run's config ({e})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: not a training config")
    for key in RECORDED_KEYS:  # what the run recorded about itself, not settings
        saved.pop(key, None)
    _check_keys(saved, f"{path}")
    return saved


def _same(name: str, old: Any, new: Any, saved: dict[str, Any], cfg: dict[str, Any]) -> bool:
    if name in ("data", "out"):
        return old == new or (bool(old) and bool(new) and os.path.abspath(old) == os.path.abspath(new))
    if name == "split_seed":  # no split seed means the seed: equal split seeds are the same split
        return validation_seed(saved) == validation_seed(cfg)
    return old == new


def resume_changes(saved: dict[str, Any], cfg: TrainConfig, epochs_done: int = 0,
                   where: str = "the run") -> dict[str, list[Any]]:
    """``{field: [saved, new]}`` for what resuming ``cfg`` changes in a run started with ``saved``.

    A change to anything but ``RESUMABLE`` (the data, the split, the model, the optimisation) is a ``ValueError``
    naming each field and its flag; so is asking for fewer epochs than the ``epochs_done`` already trained. ``out``
    may differ (a run folder moved elsewhere is still the run): that is recorded, not refused.
    """
    settings = {k: v for k, v in saved.items() if k not in RECORDED_KEYS}
    full = TrainConfig(**settings).to_dict()  # fields added since the run started take their defaults
    new = cfg.to_dict()
    changed = {k: [full[k], new[k]] for k in new if not _same(k, full[k], new[k], full, new)}
    refused = [k for k in changed if k not in RESUMABLE and k != "out"]  # a moved run folder is still the run
    if refused:
        raise ValueError(f"cannot resume {where} with a different " + "; ".join(
            f"{k} ({flag_name(k)}): {changed[k][0]!r} in config.json, {changed[k][1]!r} given" for k in refused)
            + ". Resuming keeps the data and the split; drop these (the saved values apply) or train into another "
            "--out. Only " + ", ".join(flag_name(k) for k in RESUMABLE if k not in ("resume", "log_every"))
            + " may change")
    if cfg.epochs < epochs_done:
        raise ValueError(f"cannot resume {where} with --epochs {cfg.epochs}: {epochs_done} epochs are already trained")
    changed.pop("resume", None)
    return changed
