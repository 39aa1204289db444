"""Scan files and folders: one verdict per file and model, a per-file error instead of a crash.

Decoding runs in worker processes, chunk by chunk, while the main process scores the previous chunk.
With ``output`` the rows are appended (JSON lines) as each chunk finishes, so an interrupted scan loses at
most the chunk in flight, and ``resume=True`` skips every (path, model) already written.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .data import expand_paths, iter_decoded
from .data.images import DecodeInfo
from .detector import Detector
from .io import read_jsonl

FIELDS = ["path", "task", "label", "score", "threshold", "model", "error", "warning"]


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
        return asdict(self)


def _display(path: str) -> str:
    """File names that are not valid UTF-8 are shown with escapes instead of crashing the output."""
    return os.fsdecode(os.fsencode(path)).encode("utf-8", "backslashreplace").decode("utf-8")


def scan_iter(inputs: list[str], models: list[Detector], threshold: float | None = None, chunk: int = 512,
              workers: int | None = None, skip: set[tuple[str, str]] | None = None
              ) -> Iterator[list[Verdict]]:
    """Yield verdict rows chunk by chunk (rows for every model of each file in the chunk)."""
    if not models:
        raise ValueError("scan needs at least one model")
    sizes = {d.image_size for d in models}
    if len(sizes) != 1:
        raise ValueError(f"models in one scan must share an input size, got {sorted(sizes)}")
    size = sizes.pop()
    files, problems = expand_paths(inputs)
    skip = skip or set()
    for item, msg in problems:
        key = _display(item)
        rows = [Verdict(key, d.task, None, None, None, d.name, error=msg) for d in models if (key, d.name) not in skip]
        if rows:
            yield rows
    todo = [f for f in files if any((_display(f), d.name) not in skip for d in models)]
    if workers is None:
        workers = 0 if len(todo) <= chunk else min(2, os.cpu_count() or 1)
    for start, results in iter_decoded(todo, size, models[0].net.spec.resample, workers, chunk):
        paths = [_display(p) for p in todo[start:start + len(results)]]
        good = [i for i, r in enumerate(results) if r[0] is not None]
        batch = np.stack([results[i][0] for i in good]) if good else np.zeros((0, size, size, 3), np.uint8)
        rows: list[Verdict] = []
        per_model = {}
        for d in models:
            s = d.scores(batch) if good else np.zeros(0)
            per_model[d.name] = (s, d.labels(s, threshold) if good else [])
        pos = {i: k for k, i in enumerate(good)}
        for i, (path, (_arr, err, warn, info)) in enumerate(zip(paths, results, strict=True)):
            for d in models:
                if (path, d.name) in skip:
                    continue
                if i in pos:
                    s, labs = per_model[d.name]
                    t = d.threshold if threshold is None else threshold
                    score = float(s[pos[i]]) if s.ndim == 1 else float(s[pos[i]].max())
                    note = adversarial_warning(info, size) if d.task == "adversarial" else warn
                    rows.append(Verdict(path, d.task, labs[pos[i]], round(score, 6), t, d.name, warning=note))
                else:
                    rows.append(Verdict(path, d.task, None, None, None, d.name, error=err))
        yield rows


def adversarial_warning(info: DecodeInfo | None, size: int) -> str | None:
    """Adversarial noise is a few grey levels per pixel: resizing or JPEG compression mostly erases it."""
    if info is None:
        return None
    what = ([f"resized from {info.width}x{info.height} to {size}x{size}"] if (info.width, info.height) != (size, size)
            else []) + (["JPEG-compressed"] if info.format in ("JPEG", "MPO") else [])
    if not what:
        return None
    return (f"image {' and '.join(what)}: that erases most adversarial noise, so this verdict (a 'clean' one "
            "above all) says little; scan the exact pixels the classifier received, losslessly stored")


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


def scan(inputs: list[str], models: list[str | Detector] | str | Detector = "fast", threshold: float | None = None,
         output: str | os.PathLike[str] | None = None, resume: bool = False, chunk: int = 512,
         workers: int | None = None, on_rows: Callable[[list[Verdict]], None] | None = None) -> list[Verdict]:
    """Scan ``inputs`` (files, folders, globs) with one or more models; returns all new rows.

    ``output`` (``.jsonl``): rows are appended and fsynced chunk by chunk; ``resume`` skips rows already there.
    """
    if isinstance(models, (str, Detector)):
        models = [models]
    dets = [m if isinstance(m, Detector) else Detector.load(m) for m in models]
    if output and resume:
        drop_torn_tail(output)
    skip = done_keys(output) if (output and resume) else set()
    if output and not resume and Path(output).exists():
        raise FileExistsError(f"{output} exists; pass resume=True (--resume) to continue it, or remove it")
    out_fh = open(output, "a", encoding="utf-8") if output else None  # noqa: SIM115 - closed below
    all_rows: list[Verdict] = []
    try:
        for rows in scan_iter(inputs, dets, threshold, chunk, workers, skip):
            if out_fh is not None:
                out_fh.write("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
                out_fh.flush()
                os.fsync(out_fh.fileno())
            all_rows.extend(rows)
            if on_rows is not None:
                on_rows(rows)
    finally:
        if out_fh is not None:
            out_fh.close()
    return all_rows


def to_csv(rows: list[Verdict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r.to_dict())
    return buf.getvalue()


def to_jsonl(rows: list[Verdict]) -> str:
    return "".join(json.dumps(r.to_dict()) + "\n" for r in rows)
