"""Scan rows out: JSON lines, CSV, the terminal table and its one-line summary; resuming an output file."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..io import read_jsonl

FIELDS = ["path", "task", "label", "score", "threshold", "model", "error", "warning"]


def drop_torn_tail(output: str | os.PathLike[str]) -> None:
    """Cut a partial last line left by a crash, so appended rows start on a fresh line."""
    p = Path(output)
    if not p.exists() or p.stat().st_size == 0:
        return
    with open(p, "rb+") as fh:
        data = fh.read()
        if not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def done_keys(output: str | os.PathLike[str]) -> set[tuple[str, str]]:
    """(path, model) pairs already written to a JSON-lines output (torn last line ignored)."""
    return {(r["path"], r["model"]) for r in read_jsonl(output) if "path" in r and "model" in r}


def to_csv(rows: list[Verdict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r.to_dict())
    return buf.getvalue()


def to_jsonl(rows: list[Verdict]) -> str:
    return "".join(json.dumps(r.to_dict()) + "\n" for r in rows)


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


@dataclass
class Verdict:
    path: str
    task: str
    label: str | None
    score: float | None
    threshold: float | None
    model: str
    error: str | None = None
    warning: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {f: getattr(self, f) for f in FIELDS}  # dataclasses.asdict deep-copies: ~10x slower per row
