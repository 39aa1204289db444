"""Resuming a run takes its configuration from the run folder: a changed flag is refused by name, the allowed
changes (more epochs, threads...) are recorded, and other data than the run started with is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fakescope.cli.main import main
from fakescope.io import read_jsonl
from fakescope.training.config import RESUMABLE, TrainConfig, flag_name, resolve_config, resume_changes
from fakescope.training.loop import fit
from tests.helpers.training import fit_killed_after, tiny_cfg


@pytest.fixture
def half_run(cifake_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 3-epoch run with non-default settings, killed after its first epoch."""
    run = tmp_path / "run"
    fit_killed_after(tiny_cfg(run, cifake_tiny, epochs=3, train_limit=15, val_fraction=0.25, lr=0.02), 1,
                     monkeypatch)
    return run


def test_resolve_config_on_resume_restores_the_saved_config(half_run: Path) -> None:
    cfg = resolve_config(out=str(half_run), resume=True)
    saved = json.loads((half_run / "config.json").read_text())
    assert saved.pop("world_size") == 1  # a record of the run, not a setting
    assert cfg.to_dict() == {**saved, "resume": True}
    assert (cfg.epochs, cfg.train_limit, cfg.val_fraction, cfg.lr) == (3, 15, 0.25, 0.02)


def test_resume_with_the_readme_command_carries_on_the_same_job(half_run: Path, cifake_tiny: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """``fakescope train --data D --out RUN --resume``: the saved 3 epochs, limit and split, not the defaults."""
    assert main(["train", "--data", str(cifake_tiny), "--out", str(half_run), "--resume", "--quiet"]) == 0
    cfg = json.loads((half_run / "config.json").read_text())
    assert (cfg["epochs"], cfg["train_limit"], cfg["val_fraction"]) == (3, 15, 0.25)
    hist = read_jsonl(half_run / "history.jsonl")
    assert [r["epoch"] for r in hist if r["kind"] == "epoch"] == [1, 2, 3]
    data = [r for r in hist if r["kind"] == "data"]
    assert len(data) == 1 and data[0]["train"] + data[0]["val"] == 30  # 15 per class
    assert [r["changed"] for r in hist if r["kind"] == "resume"] == [{}]
    assert "validation accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(("flags", "field"), [(["--train-limit", "10"], "train_limit"),
                                              (["--val-fraction", "0.1"], "val_fraction"),
                                              (["--lr", "0.1"], "lr"), (["--width", "16"], "arch_kwargs"),
                                              (["--seed", "4"], "seed"), (["--no-flip"], "flip")])
def test_a_changed_flag_is_refused_by_name(half_run: Path, cifake_tiny: Path, flags: list[str], field: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    before = (half_run / "config.json").read_text()
    rc = main(["train", "--data", str(cifake_tiny), "--out", str(half_run), "--resume", "--quiet", *flags])
    err = capsys.readouterr().err
    assert rc == 2 and flag_name(field) in err and "cannot resume" in err, err
    assert (half_run / "config.json").read_text() == before  # nothing overwritten
    assert json.loads((half_run / "last.json").read_text())["epoch"] == 1


def test_the_same_value_given_again_is_accepted(half_run: Path, cifake_tiny: Path) -> None:
    cfg = resolve_config(out=str(half_run) + "/", resume=True, train_limit=15, data=str(cifake_tiny) + "/",
                         split_seed=1)
    saved = json.loads((half_run / "config.json").read_text())
    assert resume_changes(saved, cfg, 1) == {}
    moved = resolve_config(out=str(half_run), resume=True, threads=2)
    moved.out = "/elsewhere/run"  # a run folder moved elsewhere is still the run: recorded, not refused
    assert resume_changes(saved, moved, 1) == {"out": [str(half_run), "/elsewhere/run"], "threads": [0, 2]}


def test_the_api_follows_the_same_rule(half_run: Path, cifake_tiny: Path) -> None:
    """``fit(cfg)`` with ``cfg.resume``: a config that differs in the data or split is refused, whoever built it."""
    with pytest.raises(ValueError, match=r"train_limit \(--train-limit\): 15 in config.json, 0 given"):
        fit(tiny_cfg(half_run, cifake_tiny, epochs=3, val_fraction=0.25, lr=0.02, resume=True), quiet=True)
    with pytest.raises(ValueError, match="--epochs 0: 1 epochs are already trained"):
        fit(resolve_config(out=str(half_run), resume=True, epochs=0), quiet=True)


def test_extending_epochs_and_threads_is_recorded(half_run: Path) -> None:
    fit(resolve_config(out=str(half_run), resume=True, epochs=4, threads=1), quiet=True)
    assert json.loads((half_run / "config.json").read_text())["epochs"] == 4
    hist = read_jsonl(half_run / "history.jsonl")
    assert [r["changed"] for r in hist if r["kind"] == "resume"] == [{"epochs": [3, 4], "threads": [0, 1]}]
    assert [r["epoch"] for r in hist if r["kind"] == "epoch"] == [1, 2, 3, 4]
    assert json.loads((half_run / "model.json").read_text())["train_config"]["epochs"] == 4


def test_other_data_under_the_same_path_is_refused(half_run: Path, cifake_tiny: Path, tmp_path: Path) -> None:
    data = tmp_path / "moved"
    shutil.copytree(cifake_tiny, data)
    cfg = json.loads((half_run / "config.json").read_text())
    (half_run / "config.json").write_text(json.dumps({**cfg, "data": str(data)}))
    for f in sorted((data / "train" / "REAL").iterdir())[:8]:  # fewer REAL images than the limit: another split
        f.unlink()
    with pytest.raises(ValueError, match="its data changed"):
        fit(resolve_config(out=str(half_run), resume=True), quiet=True)


def test_only_settings_that_keep_data_and_split_may_change() -> None:
    data_or_split = {"data", "task", "image_size", "val_fraction", "train_limit", "seed", "split_seed", "arch",
                     "arch_kwargs", "augment", "flip", "translate", "lr", "batch_size", "tta"}
    assert not data_or_split & set(RESUMABLE)
    assert set(RESUMABLE) <= {f for f in TrainConfig().to_dict()}
