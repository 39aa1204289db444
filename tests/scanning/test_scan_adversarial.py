"""An adversarial detector end to end: train srm-cnn on attack folders, scan PNGs, bundle it, scan --task both."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakescope.cli.main import main
from fakescope.inference.scorer import Detector
from fakescope.models import checkpoint
from tests.helpers.adversarial import attack_folder, smooth

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(attack data root with train/ and test/, run folder of a tiny srm-cnn trained on train/)."""
    root = tmp_path_factory.mktemp("adv")
    src = smooth(120, 0)
    attack_folder(root / "data" / "train" / "pgd-eps4", src[:80], 4, 1, np.arange(80))
    attack_folder(root / "data" / "train" / "pgd-eps8", src[:80], 8, 2, np.arange(80))
    attack_folder(root / "data" / "test" / "pgd-eps8", src[80:], 8, 3, np.arange(80, 120))
    run = root / "run"
    rc = main(["train", "--task", "adversarial", "--data", str(root / "data"), "--arch", "srm-cnn", "--width", "8",
               "--epochs", "4", "--batch-size", "32", "--optimizer", "adam", "--lr", "0.003", "--weight-decay", "0",
               "--label-smoothing", "0", "--val-fraction", "0.2", "--threads", "1", "--out", str(run), "--quiet"])
    assert rc == 0
    return root, run


def pngs(folder: Path, images: np.ndarray, prefix: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, im in enumerate(images):
        out.append(folder / f"{prefix}{i}.png")
        Image.fromarray(im).save(out[-1])
    return out


def test_train_then_scan_pngs(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, run = trained
    det = Detector.load(run / "model.json")
    assert det.task == "adversarial" and det.classes == ["clean", "attacked"] and 0 < det.threshold < 1
    with np.load(root / "data" / "test" / "pgd-eps8" / "originals.npz") as o, \
            np.load(root / "data" / "test" / "pgd-eps8" / "attacked.npz") as a:
        clean, adv = o["images"][:6], a["images"][:6]
    files = pngs(tmp_path / "scan", clean, "clean") + pngs(tmp_path / "scan", adv, "adv")
    Image.fromarray(clean[0]).resize((64, 64)).save(tmp_path / "scan" / "big.jpg")
    capsys.readouterr()
    assert main(["scan", str(tmp_path / "scan"), "--model", str(run / "model.json"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(files) + 1 and {r["task"] for r in rows} == {"adversarial"}
    assert {r["label"] for r in rows} <= {"clean", "attacked"} and all(0 <= r["score"] <= 1 for r in rows)
    by = {Path(r["path"]).name: r for r in rows}
    assert by["clean0.png"]["warning"] is None and "resized from 64x64" in by["big.jpg"]["warning"]
    s_clean = np.mean([by[f"clean{i}.png"]["score"] for i in range(6)])
    s_adv = np.mean([by[f"adv{i}.png"]["score"] for i in range(6)])
    assert s_adv > s_clean  # ±8 block noise is easy for the SRM residual stem
    assert main(["scan", str(files[0]), str(files[-1]), "--model", str(run / "model.json")]) == 0  # the table
    out = capsys.readouterr()
    assert ("clean" in out.out or "attacked" in out.out) and "REAL" not in out.out and "2 verdicts" in out.err


def test_bundle_then_scan_task_both(trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    root, run = trained
    weights = tmp_path / "weights"
    weights.mkdir()
    for f in ("fast.json", "fast.safetensors", "MANIFEST.json"):
        shutil.copy(checkpoint.bundled_dir() / f, weights / f)
    monkeypatch.setattr(checkpoint, "bundled_dir", lambda: weights)
    spec = importlib.util.spec_from_file_location("bundle_weights", ROOT / "tools" / "bundle_weights.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(tool, "bundled_dir", lambda: weights)
    with pytest.raises(SystemExit, match="also appear in"):  # test = train: refused
        tool.main(["adversarial", str(run), "--data", str(root / "data" / "train"), "--command", "x"])
    m = tool.main(["adversarial", str(run), "--data", str(root / "data"), "--command", "fakescope train ..."])
    assert m["n"] == 80 and m["task"] == "adversarial" and 0 <= m["accuracy"] <= 1
    assert json.loads((weights / "adversarial.json").read_text())["metrics"]["test_size"] == 80
    img = tmp_path / "one.png"
    Image.fromarray(smooth(1, 9)[0]).save(img)
    capsys.readouterr()
    assert main(["scan", str(img), "--task", "both", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["model"], r["task"]) for r in rows] == [("fast", "synthetic"), ("adversarial", "adversarial")]
    assert rows[0]["label"] in ("REAL", "FAKE") and rows[1]["label"] in ("clean", "attacked")
    assert main(["scan", str(img), "--task", "adversarial", "--json"]) == 0


def test_scan_npz_of_one_hwc_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue: an .npz whose `images` is ONE (32, 32, 3) image was read as 32 images of 32x3 (32 rows, exit 0)."""
    im = smooth(1, 4)[0]
    np.savez(tmp_path / "one.npz", images=im)
    np.savez(tmp_path / "one_chw.npz", images=im.transpose(2, 0, 1))
    np.savez(tmp_path / "ambiguous.npz", images=np.zeros((3, 32, 4), np.uint8))
    capsys.readouterr()
    files = [str(tmp_path / n) for n in ("one.npz", "one_chw.npz")]
    assert main(["scan", *files, "--task", "adversarial", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in rows] == [f"{f}#0" for f in files] and not any(r["error"] for r in rows)
    assert rows[0]["score"] == pytest.approx(Detector.load("adversarial").scores(im[None])[0], abs=1e-5)
    assert rows[1]["score"] == pytest.approx(rows[0]["score"], abs=1e-6)
    assert main(["scan", str(tmp_path / "ambiguous.npz"), "--task", "adversarial", "--json"]) == 1
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "ambiguous" in row["error"] and row["score"] is None
