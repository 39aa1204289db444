"""Sharded scans: a stable split of the file list, and merged parts equal one single-process scan row for row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fakescope.cli.main import main
from fakescope.scanning.demo import samples_dir
from fakescope.scanning.output import Verdict
from fakescope.scanning.scan import scan
from fakescope.scanning.shard import MergeError, merge, parse_shard, shard_of, sidecar, take_shard


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 good JPEGs in two sub-folders, two broken files and an .npz of 5 images."""
    d = tmp_path_factory.mktemp("scan")
    for cls in ("REAL", "FAKE"):
        (d / cls).mkdir()
        for f in sorted((samples_dir() / cls).glob("*.jpg"))[:12]:
            shutil.copy(f, d / cls / f.name)
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.png").write_text("not an image")
    rng = np.random.default_rng(0)
    np.savez(d / "arrays.npz", images=rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8))
    return d


def _sorted(rows: list[Verdict]) -> list[dict[str, object]]:
    return [r.to_dict() for r in sorted(rows, key=lambda r: (r.path, r.model))]


def test_parse_shard() -> None:
    assert parse_shard("0/4") == (0, 4) and parse_shard(" 3 / 4 ") == (3, 4)
    for bad in ("4/4", "1", "a/b", "-1/3", "0/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_the_split_covers_every_file_once_and_depends_on_the_path_only() -> None:
    files = [f"photos/{i:05d}.jpg" for i in range(3000)]
    parts = [take_shard(files, [], (i, 4))[0] for i in range(4)]
    assert sorted(sum(parts, [])) == files
    assert all(600 < len(p) < 900 for p in parts)  # balanced in expectation (750 each)
    more = files[::-1] + ["photos/new.jpg"]  # another order, one file added: nobody else moves
    again = [take_shard(more, [], (i, 4))[0] for i in range(4)]
    for p, q in zip(parts, again, strict=True):
        assert set(q) - set(p) <= {"photos/new.jpg"} and set(p) <= set(q)
    assert shard_of("photos/00001.jpg", 4) == shard_of("photos/00001.jpg", 4)


def test_sharded_scan_merged_equals_one_scan_row_for_row(folder: Path, model: str, tmp_path: Path) -> None:
    inputs = [str(folder), str(folder / "arrays.npz"), str(folder / "missing.jpg")]  # .npz: named explicitly
    single = scan(inputs, model)
    n = 3
    for i in range(n):
        code = main(["scan", *inputs, "--model", model, "--shard", f"{i}/{n}", "--output",
                     str(tmp_path / f"part{i}.jsonl"), "--save", str(tmp_path / f"part{i}.csv"), "--max-rows", "0"])
        assert code == (1 if any(r.error for r in scan(inputs, model, shard=(i, n))) else 0)
        meta = json.loads(sidecar(tmp_path / f"part{i}.jsonl").read_text())
        assert (meta["shard"], meta["shards"], meta["complete"]) == (i, n, True)
    sizes = [len((tmp_path / f"part{i}.jsonl").read_text().splitlines()) for i in range(n)]
    assert sum(sizes) == len(single) == 24 + 2 + 5 + 1 and min(sizes) > 0
    for ext in ("jsonl", "csv"):
        out = tmp_path / f"merged.{ext}"
        assert main(["merge", *(str(tmp_path / f"part{i}.{ext}") for i in range(n)), "--out", str(out)]) == 0
        report = merge([tmp_path / f"part{i}.{ext}" for i in range(n)], None)
        assert report.ok and report.rows == len(single)
    merged = [json.loads(x) for x in (tmp_path / "merged.jsonl").read_text().splitlines()]
    assert merged == _sorted(single)
    assert merge(sorted(tmp_path.glob("part*.jsonl*")), None).rows == len(single)  # sidecars given too: ignored
    csv_rows = merge([tmp_path / f"part{i}.csv" for i in range(n)], tmp_path / "again.jsonl")
    assert csv_rows.ok
    assert [json.loads(x) for x in (tmp_path / "again.jsonl").read_text().splitlines()] == merged


def test_merge_says_which_shards_are_missing_or_unfinished(folder: Path, model: str, tmp_path: Path) -> None:
    for i in (0, 2):
        rows = scan([str(folder)], model, shard=(i, 4), output=tmp_path / f"p-{i}-of-4.jsonl")
        assert rows
    parts = [str(tmp_path / f"p-{i}-of-4.jsonl") for i in (0, 2)]  # no sidecars: shard read from the name
    out = tmp_path / "m.jsonl"
    assert main(["merge", *parts, "--out", str(out)]) == 1 and not out.exists()
    report = merge(parts, out)
    assert report.missing == [1, 3] and "missing shards: 1, 3" in report.describe() and not out.exists()
    assert main(["merge", *parts, "--out", str(out), "--allow-missing"]) == 1 and out.exists()
    side = sidecar(parts[1])
    side.write_text(json.dumps({"shard": 2, "shards": 4, "complete": False}))
    assert merge(parts, None, allow_partial=True).incomplete == [2]


def test_merge_refuses_repeated_or_mislabelled_parts(folder: Path, model: str, tmp_path: Path) -> None:
    scan([str(folder)], model, shard=(0, 2), output=tmp_path / "a-0-of-2.jsonl")
    scan([str(folder)], model, shard=(1, 2), output=tmp_path / "b-1-of-2.jsonl")
    a, b = str(tmp_path / "a-0-of-2.jsonl"), str(tmp_path / "b-1-of-2.jsonl")
    assert merge([a, b], None).ok
    with pytest.raises(MergeError, match="appears twice"):
        merge([a, a], None)
    shutil.copy(b, tmp_path / "c-0-of-2.jsonl")  # shard 1's rows claimed as shard 0
    with pytest.raises(MergeError, match="belongs to shard 1"):
        merge([str(tmp_path / "c-0-of-2.jsonl"), b], None)
    shutil.copy(a, tmp_path / "d-0-of-3.jsonl")
    with pytest.raises(MergeError, match="different splits"):
        merge([str(tmp_path / "d-0-of-3.jsonl"), b], None)
    (tmp_path / "noshard.jsonl").write_text("")
    assert main(["merge", str(tmp_path / "noshard.jsonl"), "--out", str(tmp_path / "x.jsonl")]) == 2
