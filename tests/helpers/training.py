"""Training helpers shared by the tests: a tiny config and a fit interrupted right after an epoch's state is saved."""

from __future__ import annotations

from pathlib import Path

import pytest

import fakescope.training.loop as tr
from fakescope.training.config import TrainConfig


def tiny_cfg(out: Path, data: Path, **kw: object) -> TrainConfig:
    base = dict(data=str(data), arch="fast", arch_kwargs={"width": 8}, epochs=2, batch_size=8, lr=0.05,
                val_fraction=0.2, out=str(out), log_every=1, seed=1)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def fit_killed_after(cfg: TrainConfig, epochs_done: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``fit`` and simulate a kill just after the state of epoch ``epochs_done`` was saved."""
    calls = {"n": 0}
    real = tr.save_state

    def crash(run: Path, *a: object) -> None:
        real(run, *a)
        calls["n"] += 1
        if calls["n"] == epochs_done:
            raise KeyboardInterrupt(f"simulated kill after epoch {epochs_done}")

    monkeypatch.setattr(tr, "save_state", crash)
    with pytest.raises(KeyboardInterrupt):
        tr.fit(cfg, quiet=True)
    monkeypatch.setattr(tr, "save_state", real)
