"""Scan rows out: JSON lines, CSV, the terminal table and its one-line summary; resuming an output file."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..data.files import HIDDEN, NO_EXTENSION, NOT_IMAGE, UNSUPPORTED
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
    parts = [f"{_plural(len(ok), 'verdict')} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"]
    if errs:
        parts.append(f"{len(errs)} unreadable: " + "; ".join(f"{e.path}: {e.error}" for e in errs[:3])
                     + (" ..." if len(errs) > 3 else ""))
    if warn:
        parts.append(f"{len(warn)} with a warning (outside the model's training data, or resized/JPEG for the "
                     "adversarial task; see 'warning')")
    return " | ".join(parts)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


# skip reasons (``data.files.skip_reason``) as counted words: (one, several)
_REASONS = {NOT_IMAGE: ("not an image", "not images"), UNSUPPORTED: ("format not supported", "format not supported"),
            NO_EXTENSION: ("no extension", "no extension"), HIDDEN: ("hidden file", "hidden files")}


def summarise_skipped(skipped: list[tuple[str, str]]) -> str | None:
    """``skipped 3 files: 2 not images (.txt), 1 no extension`` for a scan's skipped files (``None`` for none)."""
    if not skipped:
        return None
    by_reason: dict[str, list[str]] = {}
    for path, why in skipped:
        by_reason.setdefault(why, []).append(os.path.splitext(path)[1].lower())
    parts = []
    for why, exts in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        one, many = _REASONS.get(why, (why, why))
        counts = sorted(((exts.count(e), e) for e in set(exts) if e), key=lambda c: (-c[0], c[1]))
        shown = [e if len(counts) == 1 else f"{e} {n}" for n, e in counts[:5]] + (["..."] if len(counts) > 5 else [])
        parts.append(f"{len(exts)} {one if len(exts) == 1 else many}" + (f" ({', '.join(shown)})" if shown else ""))
    return f"skipped {_plural(len(skipped), 'file')}: " + ", ".join(parts)


class ScanRows(list):  # type: ignore[type-arg] - a list of Verdict
    """What ``scan()`` returns: its rows (a plain list of ``Verdict``), and ``skipped``: ``(path, reason)`` for each
    file inside a scanned folder that was not an image fakescope decodes."""

    def __init__(self, rows: list[Verdict] | None = None, skipped: list[tuple[str, str]] | None = None) -> None:
        super().__init__(rows or [])
        self.skipped: list[tuple[str, str]] = list(skipped or [])


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
