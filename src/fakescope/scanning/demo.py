"""``fakescope demo``: the bundled samples scanned with a bundled model."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..io import write_text
from .output import render_table, to_csv, to_jsonl
from .scan import scan


def samples_dir() -> Path:
    return Path(str(resources.files("fakescope") / "samples"))


def run_demo(model: str = "fast", out: str = "fakescope-demo") -> int:
    """Scan the bundled samples (REAL/ and FAKE/ folders), print the table and how many verdicts were right."""
    src = samples_dir()
    rows = scan([str(src)], model)
    render_table(rows, max_rows=len(rows))
    Path(out).mkdir(parents=True, exist_ok=True)
    write_text(Path(out) / "results.jsonl", to_jsonl(rows))
    write_text(Path(out) / "results.csv", to_csv(rows))
    truth = [Path(r.path).parent.name for r in rows]
    right = sum(r.label == t for r, t in zip(rows, truth, strict=True))
    print(f"{right}/{len(rows)} bundled samples classified correctly by {model!r} "
          f"(samples are CIFAKE test images, never used in training)")
    print(f"written: {Path(out) / 'results.jsonl'} and {Path(out) / 'results.csv'}")
    return 1 if any(r.error for r in rows) else 0
