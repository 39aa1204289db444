"""Training: loss goes down, seeds are reproducible, resume equals an uninterrupted run, config precedence."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import fakescope.training.loop as tr
from fakescope.data import load_dataset
from fakescope.inference.calibration import calibrated_probs, choose_threshold, fit_temperature
from fakescope.io import read_jsonl
from fakescope.models import ModelSpec, Net, load_checkpoint
from fakescope.training.config import TrainConfig, resolve_config
from fakescope.training.loop import fit, lr_at, make_optimizer, run_epoch, train_step
from tests.helpers.training import fit_killed_after, tiny_cfg


def test_a_few_steps_lower_the_loss(cifake_tiny: Path) -> None:
    ds = load_dataset(cifake_tiny, "synthetic", 32, "train")
    torch.manual_seed(0)
    net = Net(ModelSpec(arch="fast", arch_kwargs={"width": 8}))
    cfg = TrainConfig(lr=0.01, optimizer="adam", label_smoothing=0.0)
    opt = make_optimizer(cfg, net)
    x = torch.from_numpy(ds.images).permute(0, 3, 1, 2)
    y = torch.from_numpy(ds.labels)
    first = train_step(net, opt, x, y, cfg, amp=False)["loss"]
    for _ in range(15):
        last = train_step(net, opt, x, y, cfg, amp=False)["loss"]
    assert last < 0.7 * first


def test_run_epoch_is_train_step_over_the_transformed_batches() -> None:
    """Per batch: the transform, then the learning rate, then one ``train_step``, then the callback."""
    torch.manual_seed(0)
    net = Net(ModelSpec(arch="fast", arch_kwargs={"width": 4})).eval()
    ref = copy.deepcopy(net)
    cfg = TrainConfig(lr=0.01, optimizer="adam", label_smoothing=0.0)
    opt, ref_opt = make_optimizer(cfg, net), make_optimizer(cfg, ref)
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(8) % 2
    events: list[tuple[object, ...]] = []

    def first_half(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        events.append(("transform", len(yb)))
        return xb[:4], yb[:4]

    def lr(i: int) -> float:
        events.append(("lr", i))
        return 0.01 * (i + 1)

    def on_step(i: int, m: dict[str, float]) -> None:
        events.append(("step", i, opt.param_groups[0]["lr"], sorted(m)))

    steps = run_epoch(net, opt, [(x, y)] * 2, cfg, lr_schedule=lr, batch_transform=first_half, on_step=on_step)
    assert net.training and len(steps) == 2
    assert events == [("transform", 8), ("lr", 0), ("step", 0, 0.01, ["acc", "loss"]),
                      ("transform", 8), ("lr", 1), ("step", 1, 0.02, ["acc", "loss"])]
    ref.train()
    for i in range(2):
        for g in ref_opt.param_groups:
            g["lr"] = 0.01 * (i + 1)
        assert train_step(ref, ref_opt, x[:4], y[:4], cfg, amp=False) == steps[i]
    for (k, a), b in zip(net.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_fit_restores_torch_rng_state_and_thread_count(cifake_tiny: Path, tmp_path: Path) -> None:
    torch.manual_seed(1234)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    fit(tiny_cfg(tmp_path / "run", cifake_tiny, epochs=1, seed=7, threads=threads + 1), quiet=True)
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="batch size"):  # restored when fit fails too
        fit(tiny_cfg(tmp_path / "big", cifake_tiny, batch_size=1000, threads=threads + 1), quiet=True)
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads


def test_fit_writes_a_complete_run(cifake_tiny: Path, tmp_path: Path) -> None:
    m = fit(tiny_cfg(tmp_path / "run", cifake_tiny), quiet=True)
    run = tmp_path / "run"
    for f in ("config.json", "history.jsonl", "model.json", "model.safetensors", "last.json", "curves.png",
              "metrics.json"):
        assert (run / f).exists(), f
    hist = read_jsonl(run / "history.jsonl")
    assert [r["epoch"] for r in hist if r["kind"] == "epoch"] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in hist if r["kind"] == "step")
    net, meta = load_checkpoint(run / "model.json")
    assert 0 <= net.spec.threshold <= 1 and net.spec.temperature > 0
    assert meta["train_config"]["arch"] == "fast" and meta["data_fingerprint"]
    assert 0 <= m["val_acc"] <= 1
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    with pytest.raises(FileExistsError, match="--resume"):
        fit(tiny_cfg(run, cifake_tiny), quiet=True)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    net, _ = load_checkpoint(path)
    return net.state_dict()


def test_same_seed_same_result(cifake_tiny: Path, tmp_path: Path) -> None:
    fit(tiny_cfg(tmp_path / "a", cifake_tiny), quiet=True)
    fit(tiny_cfg(tmp_path / "b", cifake_tiny), quiet=True)
    wa, wb = _weights(tmp_path / "a" / "model.json"), _weights(tmp_path / "b" / "model.json")
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_resume_continues_from_last_complete_epoch(cifake_tiny: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fit(tiny_cfg(tmp_path / "full", cifake_tiny, epochs=3), quiet=True)
    fit_killed_after(tiny_cfg(tmp_path / "part", cifake_tiny, epochs=3), 2, monkeypatch)
    assert json.loads((tmp_path / "part" / "last.json").read_text())["epoch"] == 2
    fit(tiny_cfg(tmp_path / "part", cifake_tiny, epochs=3, resume=True), quiet=True)
    wa, wb = _weights(tmp_path / "full" / "model.json"), _weights(tmp_path / "part" / "model.json")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)
    epochs = [r["epoch"] for r in read_jsonl(tmp_path / "part" / "history.jsonl") if r["kind"] == "epoch"]
    assert epochs == [1, 2, 3]


def test_bf16_autocast_on_cpu_trains(cifake_tiny: Path, tmp_path: Path) -> None:
    m = fit(tiny_cfg(tmp_path / "bf16", cifake_tiny, amp="bf16", epochs=1), quiet=True)
    assert 0 <= m["val_acc"] <= 1
    with pytest.raises(ValueError, match="amp"):
        fit(tiny_cfg(tmp_path / "bad", cifake_tiny, amp="fp8"), quiet=True)


def test_config_precedence(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('epochs = 7\nlr = 0.3\narch = "best"\n')
    cfg = resolve_config(tmp_path / "c.toml", lr=0.01, epochs=None)
    assert (cfg.epochs, cfg.lr, cfg.arch, cfg.batch_size) == (7, 0.01, "best", TrainConfig().batch_size)
    (tmp_path / "bad.json").write_text('{"epochz": 3}')
    with pytest.raises(ValueError, match="unknown config keys"):
        resolve_config(tmp_path / "bad.json")


def test_lr_schedule_shape() -> None:
    cfg = TrainConfig(lr=1.0, warmup=0.2)
    lrs = [lr_at(cfg, s, 100) for s in range(100)]
    assert max(lrs) == pytest.approx(1.0, abs=0.02) and lrs[0] < 0.2 and lrs[-1] < 0.05
    assert lr_at(TrainConfig(lr=0.1, schedule="constant"), 50, 100) == 0.1


def test_temperature_and_threshold() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    true_logit = (2 * y - 1) * 1.5 + rng.normal(0, 1.5, 4000)
    t = fit_temperature(true_logit * 4, y)  # 4x the signal; the Bayes log-odds are (4/3) x signal
    assert 2.5 < t < 3.5  # calibrated log-odds are 4/3 of the signal, so T = 3
    p = 1 / (1 + np.exp(-true_logit))
    thr = choose_threshold(p, y)
    assert 0.3 < thr < 0.7
    shifted = choose_threshold(np.clip(p + 0.3, 0, 1), y)  # a biased scorer gets a shifted threshold
    assert shifted > thr + 0.15


def test_split_seed_fixes_the_validation_split(cifake_tiny: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Models trained with different seeds but one --split-seed are validated (and ensembled) on the same images."""
    seen: list[int] = []
    real = tr.train_val_split

    def spy(ds: object, frac: float, seed: int) -> object:
        seen.append(seed)
        return real(ds, frac, seed)

    monkeypatch.setattr(tr, "train_val_split", spy)
    tr.fit(tiny_cfg(tmp_path / "a", cifake_tiny, epochs=1, seed=5, split_seed=0), quiet=True)
    tr.fit(tiny_cfg(tmp_path / "b", cifake_tiny, epochs=1, seed=6), quiet=True)
    assert seen == [0, 6]
    assert json.loads((tmp_path / "a" / "config.json").read_text())["split_seed"] == 0


def test_translate_shifts_each_image_within_its_reflect_padding() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).remainder(251).to(torch.uint8).view(2, 3, 8, 8)
    x = x.repeat(16, 1, 1, 1)
    out = tr.random_translate(x, gen, 2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    shifts = set()
    for i in range(len(x)):  # every output is one 8x8 window of its own padded image
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8])]
        assert hits, f"image {i} is not a shifted copy of itself"
        shifts.update(hits)
    assert len(shifts) > 5  # shifts really vary across the batch
    again = tr.random_translate(x, torch.Generator().manual_seed(0), 2)
    assert torch.equal(out, again)  # drawn from the generator: resumable, reproducible


def test_translate_is_recorded_and_trains(cifake_tiny: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path / "run", cifake_tiny, translate=2)
    fit(cfg, quiet=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["translate"] == 2


def test_calibrated_probs_match_torch_and_never_overflow() -> None:
    z = np.array([[2.0, -1.0, 0.5], [900.0, -900.0, 0.0]])
    np.testing.assert_allclose(calibrated_probs(z, 0.7), torch.softmax(torch.tensor(z) / 0.7, 1).numpy(), atol=1e-12)
    b = np.array([-1e4, -3.0, 0.0, 2.5, 1e4])
    with np.errstate(over="raise"):
        p = calibrated_probs(b, 0.5)
    np.testing.assert_allclose(p, torch.sigmoid(torch.tensor(b) / 0.5).numpy(), atol=1e-12)
