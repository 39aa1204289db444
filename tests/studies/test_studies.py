"""Studies end to end on tiny fixtures (learning curve, robustness, evasion), ``augment_batch`` and
``fakescope train --augment robust``, and the ``study`` / ``report`` commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from fakescope.cli.main import main
from fakescope.data.transforms import AUGMENT_OPS, augment_batch
from fakescope.evaluation.evaluate import evaluate
from fakescope.io import read_jsonl
from fakescope.models import load_checkpoint
from fakescope.studies import attack, evasion_study, learning_curve, robustness_study
from fakescope.training.loop import fit
from tests.helpers.training import fit_killed_after, tiny_cfg

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def detector(cifake_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fast(width 8) detector trained for 3 epochs on the tiny CIFAKE set (its checkpoint JSON)."""
    root = tmp_path_factory.mktemp("detector")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAKESCOPE_CACHE", str(root / "cache"))
        fit(tiny_cfg(root / "run", cifake_tiny, epochs=3), quiet=True)
    yield root / "run" / "model.json"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


# ---- augment_batch and --augment robust ---------------------------------------------------------------------


def _batch(n: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


def test_augment_batch_changes_some_images_and_is_deterministic() -> None:
    x = _batch()
    before = x.clone()
    a = augment_batch(x, torch.Generator().manual_seed(0))
    b = augment_batch(x, torch.Generator().manual_seed(0))
    c = augment_batch(x, torch.Generator().manual_seed(1))
    assert torch.equal(x, before)  # the input is not modified
    assert a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    changed = (a != x).flatten(1).any(1)
    assert 0 < int(changed.sum()) < len(x)  # p = 0.5: some images degraded, some left exactly as they were
    assert torch.equal(augment_batch(x, torch.Generator().manual_seed(0), p=0.0), x)


def test_negatives_augment_degrades_only_label_0() -> None:
    from fakescope.data.transforms import degrade

    x = _batch(64)
    y = torch.arange(64) % 2
    out = degrade(x, torch.Generator().manual_seed(0), y)
    changed = (out != x).flatten(1).any(1)
    assert not changed[y == 1].any(), "an attacked (label 1) image was degraded"
    assert changed[y == 0].any() and not changed[y == 0].all()


@pytest.mark.parametrize("op", AUGMENT_OPS)
def test_every_augment_op_degrades_within_range(op: str) -> None:
    x = _batch(6)
    y = augment_batch(x, torch.Generator().manual_seed(0), p=1.0, ops=(op,))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    assert (y != x).flatten(1).any(1).all(), f"{op} left an image unchanged"
    mean_change = (y.float() - x.float()).abs().mean().item()
    assert 0 < mean_change < 80  # a degradation, not a different image
    with pytest.raises(ValueError, match="unknown ops"):
        augment_batch(x, torch.Generator(), ops=("nope",))
    with pytest.raises(ValueError, match="uint8"):
        augment_batch(x.float(), torch.Generator())


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "model.json")[0].state_dict()


def test_train_augment_robust_is_wired_and_resumes_exactly(cifake_tiny: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fit(tiny_cfg(tmp_path / "plain", cifake_tiny, epochs=3), quiet=True)
    fit(tiny_cfg(tmp_path / "robust", cifake_tiny, epochs=3, augment="robust"), quiet=True)
    assert json.loads((tmp_path / "robust" / "config.json").read_text())["augment"] == "robust"
    wp, wr = _weights(tmp_path / "plain"), _weights(tmp_path / "robust")
    assert any(not torch.equal(wp[k], wr[k]) for k in wp), "augment=robust changed nothing"

    fit_killed_after(tiny_cfg(tmp_path / "part", cifake_tiny, epochs=3, augment="robust"), 2, monkeypatch)
    fit(tiny_cfg(tmp_path / "part", cifake_tiny, epochs=3, augment="robust", resume=True), quiet=True)
    wb = _weights(tmp_path / "part")
    for k in wr:
        assert torch.equal(wr[k], wb[k]), k
    with pytest.raises(ValueError, match="augment"):
        fit(tiny_cfg(tmp_path / "bad", cifake_tiny, augment="heavy"), quiet=True)
    assert main(["train", "--data", str(cifake_tiny), "--arch", "fast", "--width", "8", "--epochs", "1",
                 "--batch-size", "8", "--val-fraction", "0.2", "--augment", "robust", "--out", str(tmp_path / "cli"),
                 "--quiet"]) == 0
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["augment"] == "robust"


# ---- learning curve ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_learning_curve_end_to_end_and_resumable(cifake_tiny: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "lc"
    kw = dict(sizes=(8, 4), seeds=(0, 1), arch="fast", epochs=1, n_boot=20, quiet=True, arch_kwargs={"width": 8},
              batch_size=4, val_fraction=0.25)
    doc = learning_curve(str(cifake_tiny), str(out), **kw)  # type: ignore[arg-type]
    assert doc["study"] == "learning_curve" and doc["sizes"] == [4, 8] and doc["n_test"] == 20
    assert len(doc["runs"]) == 4 and {(r["size"], r["seed"]) for r in doc["runs"]} == {(4, 0), (4, 1), (8, 0),
                                                                                        (8, 1)}
    for r in doc["runs"]:
        assert r["effective_per_class"] == r["size"] and 0 <= r["accuracy"] <= 1 and r["n_test"] == 20
        assert 0 <= r["roc_auc"] <= 1 and (Path(r["dir"]) / "model.json").exists()
        cfg = json.loads((Path(r["dir"]) / "config.json").read_text())
        assert (cfg["train_limit"], cfg["seed"], cfg["epochs"], cfg["batch_size"]) == (r["size"], r["seed"], 1, 4)
    assert [s["size"] for s in doc["summary"]] == [4, 8] and all(s["n_runs"] == 2 for s in doc["summary"])
    for s in doc["summary"]:
        accs = [r["accuracy"] for r in doc["runs"] if r["size"] == s["size"]]
        assert s["accuracy_mean"] == pytest.approx(np.mean(accs)) and s["accuracy_std"] == pytest.approx(
            np.std(accs, ddof=1))
    assert json.loads((out / "learning_curve.json").read_text())["summary"] == doc["summary"]
    assert _is_png(out / "learning_curve.png")

    import fakescope.training.loop as tr

    def no_training(*a: object, **k: object) -> None:
        raise AssertionError("finished runs must be read back, not retrained")

    monkeypatch.setattr(tr, "fit", no_training)
    again = learning_curve(str(cifake_tiny), str(out), **kw)  # type: ignore[arg-type]
    assert again["summary"] == doc["summary"]
    with pytest.raises(ValueError, match="other settings: epochs 1 \\(asked 2\\)"):
        learning_curve(str(cifake_tiny), str(out), **{**kw, "epochs": 2})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sets"):
        learning_curve(str(cifake_tiny), str(out), sizes=(4,), seed=3)
    with pytest.raises(ValueError, match="pass test_data"):
        learning_curve(str(cifake_tiny / "train"), str(tmp_path / "lc2"), sizes=(4,))


# ---- robustness -------------------------------------------------------------------------------------------------


def test_robustness_study(detector: Path, cifake_tiny: Path, tmp_path: Path) -> None:
    fams = {"jpeg": (50,), "blur": (1.0,), "noise": (8.0,)}
    doc = robustness_study(str(detector), str(cifake_tiny), str(tmp_path / "rob"), families=fams, n_boot=20)
    assert doc["study"] == "robustness" and doc["n"] == 20 and doc["counts"] == {"REAL": 10, "FAKE": 10}
    rows = doc["results"]
    assert [(r["family"], r["level"]) for r in rows] == [("clean", None), ("jpeg", 50), ("blur", 1.0),
                                                        ("noise", 8.0)]
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["balanced_accuracy"] <= 1
        assert 0 <= r["recall"] <= 1 and 0 <= r["specificity"] <= 1 and 0 <= r["mean_score"] <= 1
    for r in rows[1:]:
        assert r["delta_accuracy"] == pytest.approx(r["accuracy"] - rows[0]["accuracy"])
        assert r["mean_abs_pixel_change"] > 0
    # the clean row is exactly what `fakescope evaluate` reports on the same images
    assert doc["clean"]["accuracy"] == pytest.approx(evaluate(str(detector), str(cifake_tiny), n_boot=0)["accuracy"])
    on_disk = json.loads((tmp_path / "rob" / "robustness.json").read_text())
    assert on_disk["study"] == "robustness" and len(on_disk["results"]) == 4
    assert _is_png(tmp_path / "rob" / "robustness.png")
    limited = robustness_study(str(detector), str(cifake_tiny), str(tmp_path / "r2"), limit=3,
                               families={"jpeg": (90,)}, n_boot=0)
    assert limited["counts"] == {"REAL": 3, "FAKE": 3}
    with pytest.raises(ValueError, match="unknown perturbation"):
        robustness_study(str(detector), str(cifake_tiny), str(tmp_path / "r3"), families={"sepia": (1,)})


# ---- evasion ----------------------------------------------------------------------------------------------------


def test_attack_lowers_the_fake_logit_within_budget(detector: Path, cifake_tiny: Path) -> None:
    from fakescope.data import load_dataset

    net, _ = load_checkpoint(detector)
    ds = load_dataset(cifake_tiny, "synthetic", 32, "test")
    x = torch.from_numpy(ds.images[ds.labels == 1]).permute(0, 3, 1, 2).float() / 255
    ones = torch.ones(len(x), dtype=torch.long)
    eps = 4 / 255
    with torch.no_grad():
        z0 = net.eval().logits(x)
    for method in ("fgsm", "pgd"):
        adv = attack(net, x, ones, eps, steps=5, generator=torch.Generator().manual_seed(0), method=method)
        assert adv.shape == x.shape and float((adv - x).abs().max()) <= eps + 1e-6
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1
        with torch.no_grad():
            z = net.logits(adv)
        assert (z <= z0 + 1e-5).all() and float(z.mean()) < float(z0.mean()) - 1e-3, method
    assert all(p.grad is None for p in net.parameters())


def test_evasion_study(detector: Path, cifake_tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    eps = (2 / 255, 8 / 255)
    doc = evasion_study(str(detector), str(cifake_tiny), str(out), eps_list=eps, steps=3, limit=6,
                        finetune_epochs=1, batch_size=8, lr=1e-3)
    assert doc["study"] == "evasion" and doc["n_test"] == 12 and doc["n_fake"] == 6
    assert doc["eps_255"] == pytest.approx([2, 8])
    for when in ("before", "after"):
        res = doc[when]
        clean = res["clean"]["acc_fake"]
        assert 0 <= clean <= 1 and 0 <= res["clean"]["acc_all"] <= 1
        for method in ("fgsm", "pgd"):
            assert [r["eps"] for r in res[method]] == pytest.approx(list(eps))
            for r in res[method]:
                assert r["acc_fake"] <= clean + 1e-9, (when, method, r)  # an attack never helps the detector
                assert 0 <= r["acc_all"] <= res["clean"]["acc_all"] + 1e-9
                assert r["linf"] <= r["eps"] + 1e-6
    assert [r["gain"] for r in doc["recovery"]] == pytest.approx(
        [a["acc_fake"] - b["acc_fake"] for b, a in zip(doc["before"]["pgd"], doc["after"]["pgd"], strict=True)])
    assert doc["finetune"]["eps"] == pytest.approx(8 / 255) and len(doc["finetune"]["log"]) == 1
    net, meta = load_checkpoint(out / "finetuned.json")
    assert meta["adversarial_finetune"]["epochs"] == 1 and meta["finetuned_from"] == str(detector)
    assert net.spec.temperature > 0 and 0 <= net.spec.threshold <= 1
    assert json.loads((out / "evasion.json").read_text())["recovery"] == doc["recovery"]
    assert _is_png(out / "evasion.png")
    with pytest.raises(ValueError, match="positive"):
        evasion_study(str(detector), str(cifake_tiny), str(out), eps_list=(0.0,))
    with pytest.raises(ValueError, match="train/ and test/"):  # one folder: fine-tuning would see the test images
        evasion_study(str(detector), str(cifake_tiny / "test"), str(tmp_path / "leak"))


# ---- command line -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_study_and_report_commands(detector: Path, cifake_tiny: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "studies"
    d, m = str(cifake_tiny), str(detector)
    assert main(["study", "robustness", "--model", m, "--data", d, "--out", str(root / "rob"), "--limit", "4",
                 "--family", "jpeg", "--family", "noise", "--n-boot", "10"]) == 0
    rob = json.loads((root / "rob" / "robustness.json").read_text())
    assert rob["n"] == 8 and list(rob["families"]) == ["jpeg", "noise"] and len(rob["results"]) == 1 + 5 + 3
    assert "jpeg 50" in capsys.readouterr().out
    assert main(["study", "learning-curve", "--data", d, "--out", str(root / "lc"), "--sizes", "4",
                 "--seeds", "0", "--epochs", "1", "--arch", "fast", "--batch-size", "4", "--n-boot", "10",
                 "--quiet"]) == 0
    lc = json.loads((root / "lc" / "learning_curve.json").read_text())
    assert lc["sizes"] == [4] and lc["seeds"] == [0] and lc["arch"] == "fast" and len(lc["runs"]) == 1
    assert len([r for r in read_jsonl(root / "lc" / "size-4-seed-0" / "history.jsonl") if r["kind"] == "epoch"]) == 1
    assert main(["study", "evasion", "--model", m, "--data", d, "--out", str(root / "ev"), "--eps", "4",
                 "--steps", "2", "--limit", "4", "--batch-size", "4"]) == 0
    ev = json.loads((root / "ev" / "evasion.json").read_text())
    assert ev["eps_255"] == pytest.approx([4]) and ev["n_fake"] == 4 and ev["steps"] == 2
    assert "PGD eps 4/255" in capsys.readouterr().out

    assert main(["report", str(root)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(root / "report.html")
    html = (root / "report.html").read_text(encoding="utf-8")
    for title in ("Robustness study: rob", "Learning curve: lc", "Evasion study: ev", "Accuracy per perturbation",
                  "Mean over seeds", "Recovery by adversarial fine-tuning", "Accuracy under FGSM / PGD evasion"):
        assert title in html, title
    assert "could not be rendered" not in html
    assert "Training run" not in html  # the learning curve's runs are summarised, not reported one by one
    assert html.count("data:image/png;base64,") >= 3
    assert main(["report", str(root / "rob"), "--out", str(tmp_path / "r.html")]) == 0
    assert "Accuracy per perturbation" in (tmp_path / "r.html").read_text(encoding="utf-8")

    assert main(["study", "robustness", "--model", m, "--data", d, "--out", str(root / "x"), "--family",
                 "sepia"]) == 2
    assert main(["report", str(tmp_path / "nothing-here")]) == 2
    assert "unknown --family" in capsys.readouterr().err
