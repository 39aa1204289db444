"""What the CLI's scan, demo and models commands do, as callable functions (output formatting included)."""

from __future__ import annotations

import ctypes
import os
import sys
from importlib import resources
from pathlib import Path

from .io import write_text
from .scanning import Verdict, scan, to_csv, to_jsonl


def samples_dir() -> Path:
    return Path(str(resources.files("fakescope") / "samples"))


def render_table(rows: list[Verdict], max_rows: int = 60) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(show_lines=False)
    for col in ("file", "verdict", "P(label 1)", "model", "note"):
        t.add_column(col, overflow="fold")
    for r in rows[:max_rows]:
        name = r.path if len(r.path) < 60 else "…" + r.path[-58:]
        if r.error:
            t.add_row(name, "[red]ERROR[/red]", "", r.model, r.error)
        else:
            style = "magenta" if r.label in ("FAKE", "attacked") else "green"
            t.add_row(name, f"[{style}]{r.label}[/{style}]", f"{r.score:.3f}", r.model, r.warning or "")
    Console(width=None if sys.stdout.isatty() else 140).print(t)
    if len(rows) > max_rows:
        print(f"... {len(rows) - max_rows} more rows (use --json/--csv/--save to get all)")


def summarise(rows: list[Verdict]) -> str:
    ok = [r for r in rows if not r.error]
    errs = [r for r in rows if r.error]
    warn = [r for r in ok if r.warning]
    counts: dict[str, int] = {}
    for r in ok:
        counts[f"{r.model}:{r.label}"] = counts.get(f"{r.model}:{r.label}", 0) + 1
    parts = [f"{len(ok)} verdicts ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"]
    if errs:
        parts.append(f"{len(errs)} unreadable: " + "; ".join(f"{e.path}: {e.error}" for e in errs[:3])
                     + (" ..." if len(errs) > 3 else ""))
    if warn:
        parts.append(f"{len(warn)} with a warning (outside the model's training data, or resized/JPEG for the "
                     "adversarial task; see 'warning')")
    return " | ".join(parts)


def prepare_scan_process() -> None:
    """Process-wide settings for ``fakescope scan`` (the CLI owns its process; ``scan()`` never changes them).

    OpenMP threads that sleep when idle instead of spinning: decode workers or any other busy process then keep
    their CPU (under contention a spinning second thread halved scan throughput). Read when torch loads OpenMP,
    which the scan does later; an ``OMP_WAIT_POLICY`` already set wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    retain_freed_memory()


def retain_freed_memory(limit: int = 256 << 20) -> bool:
    """Ask glibc to keep freed blocks (up to ``limit`` bytes) for reuse instead of returning them to the OS.

    By default every block over 128 KB is mapped afresh, so each batch's activations are page-faulted in again:
    a third of the CPU time of scoring 32x32 images. Only the CLI calls this (it owns its process); False where
    the C library has no ``mallopt`` (not glibc).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, limit))


def run_scan(paths: list[str], models: list[str], threshold: float | None = None, as_json: bool = False,
             as_csv: bool = False, output: str | None = None, resume: bool = False, save: list[str] | None = None,
             max_rows: int = 60, workers: int | None = None, chunk: int = 512, bf16: bool = False,
             engine: str = "auto") -> int:
    """Scan and print; returns the exit code (1 when any file could not be read)."""
    prepare_scan_process()
    header = [True]

    def stream(rows: list[Verdict]) -> None:
        if as_json:
            sys.stdout.write(to_jsonl(rows))
        elif as_csv:
            text = to_csv(rows)
            sys.stdout.write(text if header[0] else text.split("\n", 1)[1])
            header[0] = False
        sys.stdout.flush()

    rows = scan(paths, models, threshold=threshold, output=output, resume=resume, workers=workers, chunk=chunk,
                on_rows=stream if (as_json or as_csv) else None, bf16=bf16, engine=engine)
    if not (as_json or as_csv):
        render_table(rows, max_rows)
    for target in save or []:
        write_text(target, to_csv(rows) if target.endswith(".csv") else to_jsonl(rows))
    print(summarise(rows), file=sys.stderr)
    return 1 if any(r.error for r in rows) else 0


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


def list_all() -> str:
    from .models import MODELS, list_bundled, read_metadata

    lines = ["architectures:"]
    lines += [f"  {n:10s} {MODELS.describe(n)}" for n in MODELS.names()]
    lines.append("bundled checkpoints:")
    for name in list_bundled():
        meta = read_metadata(name)
        acc = meta.get("metrics", {}).get("test_accuracy")
        note = f"test accuracy {acc:.2%}" if isinstance(acc, float) else ""
        lines.append(f"  {name:10s} {meta['spec']['arch']:10s} task={meta['spec']['task']:12s} {note}")
    return "\n".join(lines)
