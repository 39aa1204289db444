"""Dynamic adversary training (``adversarial.hardening``) and ``train --init`` on tiny fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fakescope.adversarial.hardening import Adversary, adversary_transform, detector_logit, harden
from fakescope.models import ModelSpec, Net, load_checkpoint
from fakescope.models.guarded import residual_part
from fakescope.training.config import TrainConfig
from fakescope.training.loop import fit
from tests.helpers.adversarial import attack_folder, structured


def _detector(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net(ModelSpec(arch="fast", task="adversarial", classes=["clean", "attacked"], arch_kwargs={"width": 8}))


def test_adversary_swaps_attacked_images_for_adaptive_ones_within_budget(victim: Net) -> None:
    x, _ = structured(16, seed=3)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([0] * 8 + [1] * 8)
    net = _detector().train()
    out, y2 = adversary_transform(Adversary(eps=(4 / 255,), steps=5, share=0.5), victim)(net)(xt, y)
    assert net.training and torch.equal(y2, y)  # back in train mode, labels kept
    assert torch.equal(out[12:], xt[12:])  # attacked rows beyond the k = 4 swapped ones are untouched
    made, orig = out[8:12].int(), xt[:8].int()
    # every swapped-in image is within 4 grey levels of a clean image of the batch (its source), not of itself
    dist = (made[:, None] - orig[None]).abs().flatten(2).amax(2)
    assert (dist.min(1).values <= 4).all() and not torch.equal(out[8:12], xt[8:12])
    # matched noise: exactly those 4 sources became noisy clean rows, each with its adversarial copy's L2
    sources = dist.argmin(1)
    changed = (out[:8] != xt[:8]).flatten(1).any(1)
    assert sorted(torch.nonzero(changed).flatten().tolist()) == sorted(sources.tolist())
    l2 = lambda a, b: (a.float() - b.float()).flatten(1).norm(dim=1)  # noqa: E731
    np.testing.assert_allclose(l2(out[sources], xt[sources]), l2(out[8:12], xt[sources]), rtol=0.25)
    plain, _ = adversary_transform(Adversary(eps=(4 / 255,), steps=5, matched_noise=False), victim)(net)(xt, y)
    assert torch.equal(plain[:8], xt[:8])  # without matched noise the clean rows stay as they were


def test_adversary_on_float_batches_and_without_attacked_images(victim: Net) -> None:
    x, _ = structured(8, seed=5)
    xf = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    bind = adversary_transform(Adversary(eps=(8 / 255,), steps=3), victim)(_detector())
    out, _ = bind(xf, torch.tensor([0] * 4 + [1] * 4))
    assert out.dtype == torch.float32 and float((out - xf).abs().max()) <= 1.0  # [0, 1] floats stay floats
    same, _ = bind(xf, torch.zeros(8, dtype=torch.long))  # nothing to swap: the batch as it was
    assert torch.equal(same, xf)


def test_adversary_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="eps"):
        Adversary(eps=(0.0,))
    with pytest.raises(ValueError, match="share"):
        Adversary(share=0.0)


def test_detector_logit_averages_the_flip() -> None:
    net = _detector().eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        both = detector_logit(net, tta=True)(x)
        one, flipped = net.logits(x), net.logits(x.flip(3))
    assert torch.allclose(both, (one + flipped) / 2, atol=1e-6)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    x, _ = structured(64, seed=9)
    attack_folder(root / "noise", x, 8, seed=1)
    return root


def _trained_detector(pairs: Path, out: Path) -> Path:
    cfg = TrainConfig(task="adversarial", data=str(pairs), arch="fast", arch_kwargs={"width": 8}, epochs=1,
                      batch_size=16, lr=0.01, optimizer="adam", val_fraction=0.25, out=str(out), log_every=0)
    fit(cfg, quiet=True)
    return out / "model.json"


def test_harden_fine_tunes_from_init_records_the_adversary_and_resumes(pairs: Path, victim_ckpt: Path,
                                                                        tmp_path: Path) -> None:
    init = _trained_detector(pairs, tmp_path / "det")
    out = tmp_path / "hard"
    adv = Adversary(victim=str(victim_ckpt), eps=(8 / 255,), steps=3, seed=2)
    r = harden(pairs, str(init), str(out), adv, epochs=1, batch_size=16, quiet=True, val_fraction=0.25)
    assert "val_acc" in r and (out / "model.json").is_file()
    saved = json.loads((out / "adversary.json").read_text())
    assert saved["steps"] == 3 and saved["victim"] == str(victim_ckpt)
    assert json.loads((out / "config.json").read_text())["init"] == str(init)
    # a resume takes the saved adversary, whatever is passed
    harden(pairs, str(init), str(out), Adversary(steps=99), epochs=2, batch_size=16, resume=True, quiet=True,
           val_fraction=0.25)
    assert json.loads((out / "adversary.json").read_text())["steps"] == 3
    assert json.loads((out / "last.json").read_text())["epoch"] == 2


def test_train_init_starts_from_the_checkpoint_and_refuses_another_arch(pairs: Path, tmp_path: Path) -> None:
    init = _trained_detector(pairs, tmp_path / "det")
    src, _ = load_checkpoint(init)
    cfg = TrainConfig(task="adversarial", data=str(pairs), arch="fast", arch_kwargs={"width": 8}, epochs=1,
                      batch_size=16, lr=0.0, optimizer="adam", val_fraction=0.25, out=str(tmp_path / "ft"),
                      log_every=0, init=str(init))
    fit(cfg, quiet=True)  # lr 0: the weights stay those of the checkpoint (BatchNorm statistics aside)
    got, _ = load_checkpoint(tmp_path / "ft" / "model.json")
    for k, v in src.state_dict().items():
        if "running" not in k and "num_batches" not in k:
            assert torch.allclose(got.state_dict()[k], v), k
    bad = TrainConfig(**{**cfg.to_dict(), "arch_kwargs": {"width": 4}, "out": str(tmp_path / "bad")})
    with pytest.raises(ValueError, match="--init"):
        fit(bad, quiet=True)


def test_residual_part_of_a_guarded_checkpoint_scores_as_its_branch() -> None:
    from fakescope.models import resolve

    guarded, _ = load_checkpoint(resolve("adversarial"))
    res = residual_part(guarded)
    assert res.spec.arch == guarded.spec.arch_kwargs["residual"]["arch"] and res.spec.task == "adversarial"
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8))
    with torch.no_grad():
        want = guarded.body.residual(guarded.normalise(x))
        assert torch.allclose(res(x), want, atol=1e-6)
    with pytest.raises(ValueError, match="not a guarded"):
        residual_part(res)


def test_harden_command_takes_eps_in_grey_levels_and_refuses_a_classifier_init(pairs: Path, victim_ckpt: Path,
                                                                               tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture) -> None:
    from fakescope.cli.main import main

    init = _trained_detector(pairs, tmp_path / "det")
    out = tmp_path / "cli"
    argv = ["harden", "--init", str(init), "--victim", str(victim_ckpt), "--data", str(pairs), "--out", str(out),
            "--eps", "4", "--steps", "2", "--lam", "1", "--epochs", "1", "--batch-size", "16", "--quiet"]
    assert main(argv) == 0
    saved = json.loads((out / "adversary.json").read_text())
    assert saved["eps"] == [4 / 255] and saved["lams"] == [1.0] and saved["steps"] == 2
    assert "written:" in capsys.readouterr().out
    bad = [*argv[:2], str(victim_ckpt), *argv[3:8], str(tmp_path / "cli2"), *argv[9:]]
    assert main(bad) == 2  # a classifier is no detector to fine-tune: one clear line, exit 2
    assert "adversarial detector" in capsys.readouterr().err
