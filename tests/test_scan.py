"""Scanning: per-file errors never stop a scan, fields and formats, thresholds, resume without loss."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fakescope.commands import samples_dir
from fakescope.detector import Detector
from fakescope.models import ModelSpec, Net, save_checkpoint
from fakescope.scanning import FIELDS, done_keys, scan, to_csv


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny"
    save_checkpoint(Net(ModelSpec(arch="seed-cnn", threshold=0.5)).eval(), path)
    return str(path) + ".json"


@pytest.fixture()
def messy(tmp_path: Path) -> Path:
    """A folder of 12 good JPEGs and 3 broken files."""
    d = tmp_path / "messy"
    d.mkdir()
    for f in sorted((samples_dir() / "FAKE").glob("*.jpg"))[:12]:
        shutil.copy(f, d / f.name)
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.png").write_text("not an image")
    good = (samples_dir() / "REAL").glob("*.jpg").__next__().read_bytes()
    (d / "truncated.jpg").write_bytes(good[: len(good) // 3])
    return d


def test_broken_files_get_errors_and_the_rest_is_scored(messy: Path, model: str) -> None:
    rows = scan([str(messy)], model)
    assert len(rows) == 15
    bad = {Path(r.path).name: r.error for r in rows if r.error}
    assert set(bad) == {"empty.jpg", "text.png", "truncated.jpg"}
    assert "empty" in bad["empty.jpg"]
    good = [r for r in rows if not r.error]
    assert all(r.label in ("REAL", "FAKE") and 0 <= r.score <= 1 and r.task == "synthetic" for r in good)


def test_scores_match_the_detector_on_decoded_arrays(model: str) -> None:
    det = Detector.load(model)
    files = sorted((samples_dir() / "REAL").glob("*.jpg"))[:5]
    rows = scan([str(f) for f in files], det)
    from fakescope.data import decode_image

    arr = np.stack([decode_image(f)[0] for f in files])
    np.testing.assert_allclose([r.score for r in rows], det.scores(arr), atol=1e-6)


def test_threshold_override(model: str) -> None:
    files = [str(f) for f in sorted((samples_dir() / "REAL").glob("*.jpg"))[:6]]
    assert all(r.label == "FAKE" for r in scan(files, model, threshold=0.0))
    assert all(r.label == "REAL" for r in scan(files, model, threshold=1.0 + 1e-9))


def test_csv_has_all_fields(messy: Path, model: str) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(scan([str(messy)], model)))))
    assert list(rows[0]) == FIELDS and len(rows) == 15


def test_two_models_give_two_rows_per_file(messy: Path, model: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    other = tmp_path / "other"
    save_checkpoint(Net(ModelSpec(arch="fast", arch_kwargs={"width": 8}, task="adversarial",
                                  classes=["clean", "attacked"])).eval(), other)
    rows = scan([str(messy)], [model, str(other)])
    assert len(rows) == 30
    assert {r.task for r in rows} == {"synthetic", "adversarial"}


def test_output_and_resume_lose_nothing_and_repeat_nothing(messy: Path, model: str, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    files = sorted(str(p) for p in messy.iterdir())
    scan(files[:6], model, output=out)
    # simulate a crash mid-write: a torn last line
    with open(out, "a") as fh:
        fh.write('{"path": "torn')
    with pytest.raises(FileExistsError):
        scan(files, model, output=out)
    new = scan(files, model, output=out, resume=True, chunk=4)
    assert len(new) == 9
    lines = [json.loads(x) for x in out.read_text().splitlines() if x.startswith("{") and x.endswith("}")]
    assert sorted(r["path"] for r in lines) == files  # every file exactly once
    assert done_keys(out) == {(f, str(Path(model).with_suffix(""))) for f in files}
