"""What a scan tells besides its rows: skipped files counted by reason (API and CLI), progress, a refused
threshold, singular wording."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fakescope.cli.main import main
from fakescope.scanning.demo import samples_dir
from fakescope.scanning.output import ScanRows, Verdict, summarise, summarise_skipped
from fakescope.scanning.scan import scan


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """3 JPEGs, and 5 files a folder scan leaves out: 2 text files, one without extension, an EPS, a dotfile."""
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    for f in sorted((samples_dir() / "REAL").glob("*.jpg"))[:3]:
        shutil.copy(f, d / f.name)
    (d / "notes.txt").write_text("x")
    (d / "sub" / "more.txt").write_text("x")
    (d / "README").write_text("x")
    (d / "figure.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n")
    (d / ".DS_Store").write_bytes(b"\x00")
    return d


def test_scan_returns_its_rows_and_what_it_skipped(folder: Path) -> None:
    seen: list[tuple[int, int]] = []
    rows = scan([str(folder)], "fast", progress=lambda done, total: seen.append((done, total)))
    assert isinstance(rows, list) and isinstance(rows, ScanRows) and len(rows) == 3
    assert all(isinstance(r, Verdict) and not r.error for r in rows)
    assert sorted((Path(p).name, why) for p, why in rows.skipped) == [
        (".DS_Store", "hidden file"), ("README", "no extension"), ("figure.eps", "format not supported"),
        ("more.txt", "not an image"), ("notes.txt", "not an image")]
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)
    assert summarise_skipped(rows.skipped) == ("skipped 5 files: 2 not images (.txt), 1 format not supported "
                                               "(.eps), 1 hidden file, 1 no extension")
    assert summarise_skipped([]) is None


def test_cli_prints_the_skipped_summary_and_names_refused_formats(folder: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(folder), "--json"]) == 0
    err = capsys.readouterr().err
    assert "3 verdicts" in err and "skipped 5 files: 2 not images (.txt)" in err
    assert main(["scan", str(folder / "figure.eps"), "--json"]) == 1  # named explicitly: scanned, refused by name
    out = capsys.readouterr().out
    assert "format not supported: EPS" in out


@pytest.mark.parametrize("value", ["50", "-0.1", "1.5", "nan", "high"])
def test_cli_refuses_a_threshold_outside_0_1(folder: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["scan", str(folder), "--threshold", value])
    assert e.value.code == 2
    assert "--threshold: must be a probability in [0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("value", [50, -0.1, float("nan"), True])
def test_the_api_refuses_it_too(folder: Path, value: float) -> None:
    with pytest.raises(ValueError, match=r"threshold must be a probability in \[0, 1\]"):
        scan([str(folder)], "fast", threshold=value)


def test_edges_of_the_threshold_are_accepted(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(folder), "--threshold", "1", "--json"]) == 0
    assert main(["scan", str(folder), "--threshold", "0", "--json"]) == 0


def test_one_verdict_is_singular() -> None:
    row = Verdict("a.jpg", "synthetic", "REAL", 0.1, 0.5, "fast")
    assert summarise([row]).startswith("1 verdict (") and summarise([row, row]).startswith("2 verdicts (")
