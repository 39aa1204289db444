"""Sharded scans: a deterministic split of the file list (``scan --shard I/N``) and ``merge`` of the parts.

The split hashes each path as it appears in the rows (SHA-1 of its UTF-8 bytes, the first 8 bytes as a big-endian
integer, modulo N): a file's shard depends on its path alone, not on the order of the list or on which other files
exist, so N jobs given the same inputs cover every file exactly once, and files added between runs never move the
others. Shards are balanced in expectation (each holds ~1/N of the files, binomially). An ``.npz`` goes whole to the
shard of its file name (its rows are ``FILE#INDEX``); an input that matched nothing gives its error row in the shard
of the input's text.

Each part records its shard in a sidecar ``PART.shard.json`` (written by ``fakescope scan --shard`` next to
``--output``/``--save`` files: shard, shard count, inputs, models, and whether the scan finished), or, for a part
redirected from stdout, in its file name (``...-3-of-8.jsonl``). ``merge`` checks that every row belongs to its part's
shard, that no (path, model) row appears twice, and says which shards are missing or unfinished.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..io import read_jsonl, write_json, write_text
from .output import FIELDS, Verdict, to_csv, to_jsonl

SPLIT = "sha1(path) mod n"
SIDECAR = ".shard.json"
_NAME = re.compile(r"(\d+)-of-(\d+)")


class MergeError(ValueError):
    """The parts cannot be merged without losing or repeating rows; the message says which."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (0 <= I < N, 0-based: shard 0/4 is the first of 4) -> ``(I, N)``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"--shard takes I/N (e.g. 0/8 for the first of 8 shards), got {text!r}")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= I < N (shards are numbered from 0)")
    return i, n


def shard_of(key: str, n: int) -> int:
    """The shard (0..n-1) of one path as written in the rows."""
    digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % n


def take_shard(files: list[str], problems: list[tuple[str, str]], shard: tuple[int, int],
               key: Callable[[str], str] = str) -> tuple[list[str], list[tuple[str, str]]]:
    """The files (order kept) and problem inputs of shard ``shard = (i, n)``; ``key`` maps a path to its row key."""
    i, n = shard
    return ([f for f in files if shard_of(key(f), n) == i],
            [(item, msg) for item, msg in problems if shard_of(key(item), n) == i])


def _row_in_shard(path: str, i: int, n: int) -> bool:
    if shard_of(path, n) == i:
        return True
    head, sep, index = path.rpartition("#")  # FILE#INDEX rows of an .npz follow their file
    return bool(sep) and index.isdigit() and shard_of(head, n) == i


def sidecar(part: str | os.PathLike[str]) -> Path:
    p = Path(part)
    return p.with_name(p.name + SIDECAR)


def write_part_manifest(part: str | os.PathLike[str], shard: tuple[int, int], inputs: list[str],
                        models: list[str], complete: bool) -> None:
    """The sidecar of one part (atomic): written with ``complete=False`` before the scan, ``True`` after it."""
    write_json(sidecar(part), {"shard": shard[0], "shards": shard[1], "split": SPLIT, "inputs": list(inputs),
                               "models": list(models), "complete": complete, "fakescope": __version__})


@dataclass
class Part:
    """One part file: its shard, rows and (when it has a sidecar) what it was scanned with."""

    path: Path
    shard: int
    shards: int
    rows: list[Verdict]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete", True))


def _shard_info(path: Path) -> tuple[int, int, dict[str, Any]]:
    side = sidecar(path)
    if side.is_file():
        meta = json.loads(side.read_text(encoding="utf-8"))
        if meta.get("split", SPLIT) != SPLIT:
            raise MergeError(f"{side}: split {meta.get('split')!r}, this fakescope merges {SPLIT!r}")
        return int(meta["shard"]), int(meta["shards"]), meta
    m = _NAME.findall(path.name)
    if not m:
        raise MergeError(f"{path}: no {side.name} beside it and no I-of-N in its name: which shard is it? "
                         "(write parts with fakescope scan --shard I/N --output FILE, or name them like part-3-of-8)")
    i, n = (int(v) for v in m[-1])
    if not 0 <= i < n:
        raise MergeError(f"{path}: shard {i} of {n} is out of range (shards are numbered from 0)")
    return i, n, {}


def _opt_float(v: str) -> float | None:
    return float(v) if v != "" else None


def _read_rows(path: Path) -> list[Verdict]:
    """Verdicts of a JSON-lines or CSV part (a torn last JSON line, left by a kill, is skipped)."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is not None and list(reader.fieldnames) != FIELDS:
                raise MergeError(f"{path}: CSV columns {reader.fieldnames}, expected {FIELDS}")
            return [Verdict(r["path"], r["task"], r["label"] or None, _opt_float(r["score"]),
                            _opt_float(r["threshold"]), r["model"], r["error"] or None, r["warning"] or None)
                    for r in reader]
    rows = []
    for n, r in enumerate(read_jsonl(path), 1):
        if not isinstance(r, dict) or "path" not in r or "model" not in r:
            raise MergeError(f"{path}: line {n} is not a scan row (needs at least path and model)")
        rows.append(Verdict(**{f: r.get(f) for f in FIELDS}))  # type: ignore[arg-type]
    return rows


def read_part(path: str | os.PathLike[str]) -> Part:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such part file")
    i, n, meta = _shard_info(p)
    return Part(p, i, n, _read_rows(p), meta)


@dataclass
class MergeReport:
    """What ``merge`` found: shards present, missing and unfinished, and the rows written."""

    shards: int
    present: list[int]
    missing: list[int]
    incomplete: list[int]
    rows: int
    out: str | None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.incomplete)

    def describe(self) -> str:
        head = f"{len(self.present)} of {self.shards} shards, {self.rows} rows"
        parts = [head + (f" -> {self.out}" if self.out else " (nothing written)")]
        if self.missing:
            parts.append(f"missing shards: {', '.join(map(str, self.missing))}")
        if self.incomplete:
            parts.append(f"unfinished shards (killed? rerun them with --resume): "
                         f"{', '.join(map(str, self.incomplete))}")
        return "; ".join(parts)


def _check_parts(parts: list[Part]) -> int:
    """The shard count the parts agree on; a ``MergeError`` for mixed counts, inputs, models or a repeated shard."""
    counts = {p.shards for p in parts}
    if len(counts) != 1:
        raise MergeError("parts come from different splits: " + ", ".join(f"{p.path.name} is {p.shard}/{p.shards}"
                                                                          for p in parts))
    for key in ("inputs", "models"):
        seen = {json.dumps(p.meta[key]) for p in parts if key in p.meta}
        if len(seen) > 1:
            raise MergeError(f"parts were scanned with different {key}: " + " vs ".join(sorted(seen)))
    by_shard: dict[int, Path] = {}
    for p in parts:
        if p.shard in by_shard:
            raise MergeError(f"shard {p.shard} appears twice: {by_shard[p.shard]} and {p.path}")
        by_shard[p.shard] = p.path
    return counts.pop()


def merge_rows(parts: list[Part]) -> list[Verdict]:
    """All rows of ``parts``, sorted by (path, model); a ``MergeError`` for a row outside its part's shard or a
    (path, model) row in two places."""
    seen: dict[tuple[str, str], Path] = {}
    rows: list[Verdict] = []
    for p in parts:
        for r in p.rows:
            if not _row_in_shard(r.path, p.shard, p.shards):
                raise MergeError(f"{p.path}: row {r.path!r} belongs to shard {shard_of(r.path, p.shards)}, not "
                                 f"{p.shard}: the parts were not split by fakescope scan --shard with these numbers")
            key = (r.path, r.model)
            if key in seen:
                raise MergeError(f"row {key} appears twice ({seen[key]} and {p.path})")
            seen[key] = p.path
            rows.append(r)
    rows.sort(key=lambda r: (r.path, r.model))
    return rows


def merge(parts: list[str | os.PathLike[str]], out: str | os.PathLike[str] | None,
          allow_partial: bool = False) -> MergeReport:
    """Join part files (JSON lines or CSV) into ``out`` (``.csv`` or JSON lines, by its suffix; written atomically).

    Rows are sorted by (path, model), so the result equals a single-process scan's rows in that order. With missing
    or unfinished shards nothing is written unless ``allow_partial``; the report says which.
    """
    parts = [p for p in parts if not str(p).endswith(SIDECAR)]  # parts/* names the sidecars too
    if not parts:
        raise MergeError("merge needs at least one part file")
    loaded = [read_part(p) for p in parts]
    n = _check_parts(loaded)
    rows = merge_rows(loaded)
    present = sorted(p.shard for p in loaded)
    report = MergeReport(n, present, sorted(set(range(n)) - set(present)),
                         sorted(p.shard for p in loaded if not p.complete), len(rows), None)
    if out is not None and (report.ok or allow_partial):
        write_text(out, to_csv(rows) if str(out).lower().endswith(".csv") else to_jsonl(rows))
        report.out = str(out)
    return report
