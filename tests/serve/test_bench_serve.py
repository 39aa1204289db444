"""``benchmarks/bench_serve.py`` in its short mode: it runs, on loopback, and writes what BENCHMARKS.md quotes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_serve_short_run(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    out = tmp_path / "serve.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_serve.py"), "--seconds", "1", "--clients", "3",
                    "--model", "fast", "--side", "2000", "--admitted", "1", "--out", str(out)],
                   check=True, env=env, timeout=300, capture_output=True)
    res = json.loads(out.read_text())
    assert set(res["by_phase"]) == {"quiet", "heavy-refused", "heavy-admitted"}
    assert res["server_errors"] == 0 and res["tracebacks_in_server_log"] == 0
    assert all(p["ok"] > 0 for p in res["by_phase"].values())
    runs = {r["phase"]: r for r in res["runs"]}
    assert set(runs["heavy-refused"]["heavy"]["statuses"]) == {"413"}  # forty 2000x2000 PNGs: over the budget
    assert set(runs["heavy-admitted"]["heavy"]["statuses"]) == {"200"}
    assert res["models"] == ["fast"] and res["machine"]["cpus"] >= 1
