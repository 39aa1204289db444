"""Training configuration: defaults, then a config file (JSON or TOML), then flags."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from ..data.tasks import check_task
from ..data.transforms import AUGMENTS

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
    resume: bool = False
    log_every: int = 50

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """A ``ValueError`` naming the field and its allowed values for an unknown choice."""
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
    """Defaults ← config file ← flags (``None`` flags are ignored). Unknown keys are an error."""
    names = {f.name for f in fields(TrainConfig)}
    merged: dict[str, Any] = {}
    if file:
        merged.update(load_config_file(file))
    merged.update({k: v for k, v in flags.items() if v is not None})
    unknown = set(merged) - names
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(unknown)}")
    return TrainConfig(**merged)
