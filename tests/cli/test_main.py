"""The command line end to end, through subprocesses: train → evaluate → scan, exit codes and formats."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def fakescope(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "fakescope.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def trained(cifake_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    r = fakescope("train", "--task", "synthetic", "--data", str(cifake_tiny), "--arch", "fast", "--width", "8",
                  "--epochs", "2", "--batch-size", "8", "--val-fraction", "0.2", "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "validation accuracy" in r.stdout
    return run


def test_evaluate(trained: Path, cifake_tiny: Path, tmp_path: Path) -> None:
    r = fakescope("evaluate", "--model", str(trained / "model.json"), "--data", str(cifake_tiny),
                  "--out", str(tmp_path / "ev"), "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["n"] == 20 and 0 <= m["accuracy"] <= 1
    assert (tmp_path / "ev" / "metrics.json").exists() and (tmp_path / "ev" / "roc.png").exists()


def test_scan_json_csv_and_exit_codes(trained: Path, cifake_tiny: Path, tmp_path: Path) -> None:
    folder = cifake_tiny / "test"
    r = fakescope("scan", str(folder), "--model", str(trained), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 20
    assert {"path", "task", "label", "score", "model", "error"} <= set(rows[0])
    r = fakescope("scan", str(folder), str(tmp_path / "missing.jpg"), "--model", str(trained), "--csv")
    assert r.returncode == 1  # one input failed
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(table) == 21 and sum(1 for t in table if t["error"]) == 1
    r = fakescope("scan", str(folder), "--model", str(tmp_path / "nope.json"))
    assert r.returncode == 2 and "no checkpoint" in r.stderr


def test_scan_table_and_saved_files(trained: Path, cifake_tiny: Path, tmp_path: Path) -> None:
    r = fakescope("scan", str(cifake_tiny / "test" / "FAKE"), "--model", str(trained),
                  "--save", str(tmp_path / "a.csv"), "--save", str(tmp_path / "a.jsonl"))
    assert r.returncode == 0, r.stderr
    assert "verdict" in r.stdout and "10 verdicts" in r.stderr
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 10


def test_models_and_info() -> None:
    r = fakescope("models")
    assert r.returncode == 0 and "seed-cnn" in r.stdout and "fast" in r.stdout
    r = fakescope("info", "fast")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["task"] == "synthetic"


def test_demo_runs_on_bundled_defaults(tmp_path: Path) -> None:
    r = fakescope("demo", "--out", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stderr
    assert "bundled samples classified correctly" in r.stdout
    assert (tmp_path / "demo" / "results.csv").exists() and (tmp_path / "demo" / "results.jsonl").exists()
