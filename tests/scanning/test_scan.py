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

from fakescope.inference.scorer import Detector
from fakescope.models import ModelSpec, Net, save_checkpoint
from fakescope.scanning.demo import samples_dir
from fakescope.scanning.output import FIELDS, done_keys, to_csv
from fakescope.scanning.scan import scan


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
    rows = scan(files, model, threshold=1.0)
    assert all(r.label == ("FAKE" if r.score >= 1.0 else "REAL") for r in rows) and any(r.score < 1 for r in rows)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):  # as the HTTP API and evaluate
        scan(files, model, threshold=1.0 + 1e-9)


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


def test_npz_arrays_get_one_row_per_image(model: str, tmp_path: Path) -> None:
    """The seed notebook's format: an .npz with `images` (uint8 or [0,1] floats, NHWC or NCHW, any size)."""
    det = Detector.load(model)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "u8.npz", images=imgs)
    np.savez(tmp_path / "f01_nchw.npz", images=imgs.transpose(0, 3, 1, 2) / 255.0)
    np.savez(tmp_path / "big.npz", images=np.repeat(np.repeat(imgs[:2], 2, axis=1), 2, axis=2))
    np.savez(tmp_path / "twice.npz", images=imgs / 255.0 / 255.0)  # divided by 255 twice: refused
    np.savez(tmp_path / "noimages.npz", x=imgs)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    (tmp_path / "text.npz").write_text("not an archive at all")  # numpy would suggest unpickling it
    np.save(tmp_path / "plain.npy", imgs)
    (tmp_path / "plain.npy").rename(tmp_path / "npy.npz")  # a bare .npy array under an .npz name
    paths = [str(tmp_path / n) for n in ("u8.npz", "f01_nchw.npz", "big.npz", "twice.npz", "noimages.npz",
                                         "junk.npz", "text.npz", "npy.npz")]
    rows = {r.path: r for r in scan(paths, det, chunk=3)}
    want = det.scores(imgs)
    for name in ("u8.npz", "f01_nchw.npz"):
        got = [rows[f"{tmp_path / name}#{i}"].score for i in range(7)]
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert rows[f"{tmp_path / 'big.npz'}#1"].warning.startswith("resized from 64x64 to 32x32")
    assert "255 again" in rows[str(tmp_path / "twice.npz")].error
    assert "no 'images' array" in rows[str(tmp_path / "noimages.npz")].error
    assert "not a readable" in rows[str(tmp_path / "junk.npz")].error
    for name in ("text.npz", "npy.npz"):
        err = rows[str(tmp_path / name)].error
        assert "not a .npz (zip) archive" in err and "allow_pickle" not in err
    assert len(rows) == 7 + 7 + 2 + 5
    again = scan(paths, det, output=tmp_path / "out.jsonl")
    assert len(again) == len(rows)
    assert scan(paths, det, output=tmp_path / "out.jsonl", resume=True) == []  # nothing repeated


class _Constant:
    """A minimal torch-free ``Scorer``: scans rely on the contract, not on an engine class."""

    name, uses_torch = "constant", False

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    task = property(lambda self: self.spec.task)
    classes = property(lambda self: self.spec.classes)
    threshold = property(lambda self: self.spec.threshold)
    image_size = property(lambda self: self.spec.image_size)
    tta = property(lambda self: self.spec.tta)

    def scores(self, images: np.ndarray, batch_size: int | None = None, bf16: bool = False) -> np.ndarray:
        return np.full(len(images), 0.75, np.float32)

    def labels(self, scores: np.ndarray, threshold: float | None = None) -> list[str]:
        return self.spec.verdicts(scores, threshold)


def test_scan_takes_any_scorer_and_leaves_torch_alone_without_torch_engines(
        messy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fakescope.inference.contract import Scorer

    det = _Constant(ModelSpec(arch="fast", threshold=0.8))
    assert isinstance(det, Scorer)

    def no_torch() -> int:
        raise AssertionError("a scan without torch engines tuned torch's threads")

    monkeypatch.setattr(torch, "get_num_threads", no_torch)
    rows = scan([str(messy)], det)
    good = [r for r in rows if not r.error]
    assert len(rows) == 15 and len(good) == 12
    assert all(r.model == "constant" and r.score == 0.75 and r.label == "REAL" and r.threshold == 0.8 for r in good)
