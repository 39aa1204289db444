"""Scan files and folders: one verdict per file and model, a per-file error instead of a crash.

Decoding runs in worker processes, chunk by chunk, while the main process scores the previous chunk. The workers
start before the models are loaded, so on a cold start they decode while the engine is imported: ONNX Runtime for
the architectures ``inference.onnx_engine`` builds (no torch import at all), torch for the rest. With ``output`` the
rows are appended (JSON lines) as each chunk finishes, so an interrupted scan loses at most the chunk in flight,
and ``resume=True`` skips every (path, model) already written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.arrays import is_array_file, read_images
from ..data.decode import Decoded, DecodeStream, available_cpus
from ..data.files import expand_paths
from ..data.images import DecodeInfo
from ..models.checkpoint import display_name, read_metadata
from ..models.spec import ModelSpec
from .output import ScanRows, Verdict, done_keys, drop_torn_tail, to_jsonl
from .shard import take_shard

if TYPE_CHECKING:  # torch is imported when the models load, after decoding has started
    from typing import TypeAlias

    from ..inference.contract import Scorer

    Model: TypeAlias = "str | os.PathLike[str] | Scorer"


ENGINES = ("auto", "torch", "onnx")
Progress = Callable[[int, int], None]  # progress(done, total)


@dataclass
class _Planned:
    """A model to scan with: its name and spec, read without torch; ``detector`` once loaded."""

    source: Model
    name: str
    spec: ModelSpec
    detector: Scorer | None = None


def plan_model(model: Model) -> _Planned:
    if isinstance(model, (str, os.PathLike)):
        return _Planned(model, display_name(model), ModelSpec.from_dict(read_metadata(model)["spec"]))
    return _Planned(model, model.name, model.spec, model)


def display_path(path: str) -> str:
    """File names that are not valid UTF-8 are shown with escapes instead of crashing the output."""
    return os.fsdecode(os.fsencode(path)).encode("utf-8", "backslashreplace").decode("utf-8")


def default_workers(n_files: int, chunk: int) -> int:
    """Decode processes for a scan: none for one chunk, else half the CPUs (the other half scores)."""
    return 0 if n_files <= chunk else max(1, min(4, available_cpus() // 2))


def scan_iter(inputs: list[str], models: Sequence[Model], threshold: float | None = None, chunk: int = 512,
              workers: int | None = None, skip: set[tuple[str, str]] | None = None, bf16: bool = False,
              engine: str = "auto", skipped: list[tuple[str, str]] | None = None,
              progress: Progress | None = None, shard: tuple[int, int] | None = None) -> Iterator[list[Verdict]]:
    """Yield verdict rows chunk by chunk (rows for every model of each file in the chunk).

    ``models``: loaded ``Scorer``s (``Detector``, ``OnnxDetector``), bundled names or checkpoint paths (loaded once
    decoding has started). ``skipped`` (a list) receives ``(path, reason)`` for each file inside a folder that is
    not scanned (``data.files.skip_reason``); ``progress(done, total)`` is called with the image files scored.
    ``shard=(i, n)``: only the files of shard ``i`` of ``n`` (``scanning.shard``).
    """
    return _scan_iter(inputs, [plan_model(m) for m in models], threshold, chunk, workers, skip, bf16, engine, skipped,
                      progress, shard)


def _scan_iter(inputs: list[str], plans: list[_Planned], threshold: float | None, chunk: int,  # long: one pipeline
               workers: int | None, skip: set[tuple[str, str]] | None, bf16: bool, engine: str = "auto",
               skipped: list[tuple[str, str]] | None = None, progress: Progress | None = None,
               shard: tuple[int, int] | None = None) -> Iterator[list[Verdict]]:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if not plans:
        raise ValueError("scan needs at least one model")
    check_threshold(threshold)
    sizes = {p.spec.image_size for p in plans}
    if len(sizes) != 1:
        raise ValueError(f"models in one scan must share an input size, got {sorted(sizes)}")
    size = sizes.pop()
    files, problems = expand_paths(inputs, skipped=skipped)
    if shard is not None:
        files, problems = take_shard(files, problems, shard, key=display_path)
    skip = skip or set()
    arrays = [f for f in files if is_array_file(f)]  # .npz: one row per image, keyed FILE#INDEX
    todo = [f for f in files if not is_array_file(f) and any((display_path(f), p.name) not in skip for p in plans)]
    workers = default_workers(len(todo), chunk) if workers is None else workers
    resample = plans[0].spec.resample
    with DecodeStream(todo, size, resample, workers, chunk) as stream:
        dets = load_scorers(plans, engine, bf16, max(1, available_cpus() - stream.workers))
        for item, msg in problems:
            key = display_path(item)
            rows = [Verdict(key, d.task, None, None, None, d.name, error=msg) for d in dets
                    if (key, d.name) not in skip]
            if rows:
                yield rows
        for a in arrays:
            yield from _array_rows(a, dets, threshold, skip, bf16, size, resample, chunk)
        yield from _score(stream, todo, dets, threshold, skip, bf16, size, progress)


def check_threshold(threshold: float | None) -> None:
    """``None`` (each model's calibrated threshold) or a probability in [0, 1]; else a ``ValueError``."""
    if threshold is None:
        return
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold!r}")


def load_scorers(plans: list[_Planned], engine: str = "auto", bf16: bool = False,
                 threads: int | None = None) -> list[Scorer]:
    """Load each planned model: with ONNX Runtime when ``engine`` allows it (no torch import), else torch.

    ``threads``: ONNX Runtime's intra-op threads, the CPUs the decode workers leave (its threads do not shrink
    later, as torch's do in ``_score``: one thread per core busy is what scores most images per CPU second)."""
    from ..inference import onnx_engine

    for p in plans:
        if p.detector is not None:
            continue
        runnable = not bf16 and onnx_engine.supports(p.spec) and onnx_engine.available()
        if engine == "onnx" and not runnable:
            raise ValueError(f"--engine onnx cannot run {p.name!r}: it needs onnxruntime installed, float32 "
                             f"(no --bf16) and one of the architectures {', '.join(onnx_engine.ARCHITECTURES)}")
        if engine != "torch" and runnable:
            p.detector = onnx_engine.OnnxDetector.load(p.source, threads=threads)
        else:
            from ..inference.scorer import Detector

            p.detector = Detector.load(p.source)
    return [p.detector for p in plans if p.detector is not None]


def _array_rows(path: str, dets: list[Scorer], threshold: float | None, skip: set[tuple[str, str]], bf16: bool,
                size: int, resample: str, chunk: int) -> Iterator[list[Verdict]]:
    """Rows for every image of one ``.npz``, keyed ``FILE#INDEX``, chunk by chunk; one error row if unreadable."""
    try:
        images, w, h = read_images(path, size, resample)
    except ValueError as e:
        yield verdict_rows([path], [(None, str(e), None, None)], dets, threshold, skip, bf16, size)
        return
    resized = f"resized from {w}x{h} to {size}x{size}" if (w, h) != (size, size) else None
    info = DecodeInfo(w, h, "NPZ", resized)
    for start in range(0, len(images), chunk):
        batch = images[start:start + chunk]
        yield verdict_rows([f"{path}#{i}" for i in range(start, start + len(batch))],
                    [(img, None, resized, info) for img in batch], dets, threshold, skip, bf16, size)


def _score(stream: DecodeStream, todo: list[str], dets: list[Scorer], threshold: float | None,
           skip: set[tuple[str, str]], bf16: bool, size: int, progress: Progress | None = None
           ) -> Iterator[list[Verdict]]:
    """Score each decoded chunk; while workers decode, leave them their CPUs (fewer intra-op threads)."""
    def rows(start: int, results: list[Decoded]) -> list[Verdict]:
        out = verdict_rows(todo[start:start + len(results)], results, dets, threshold, skip, bf16, size)
        if progress is not None:
            progress(start + len(results), len(todo))
        return out

    if progress is not None:
        progress(0, len(todo))
    if not any(getattr(d, "uses_torch", True) for d in dets):  # no torch here; ORT's idle threads do not spin
        for start, results in stream:
            yield rows(start, results)
        return
    import torch

    threads = torch.get_num_threads()
    try:
        for start, results in stream:
            want = threads if stream.done() else max(1, threads - stream.workers)
            if torch.get_num_threads() != want:
                torch.set_num_threads(want)
            yield rows(start, results)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def verdict_rows(files: list[str], results: list[Decoded], dets: list[Scorer], threshold: float | None,
          skip: set[tuple[str, str]], bf16: bool, size: int) -> list[Verdict]:
    paths = [display_path(p) for p in files]
    good = [i for i, r in enumerate(results) if r[0] is not None]
    batch = np.stack([results[i][0] for i in good]) if good else np.zeros((0, size, size, 3), np.uint8)
    per_model = {}
    for d in dets:
        s = d.scores(batch, bf16=bf16) if good else np.zeros(0)
        per_model[d.name] = (s if s.ndim == 1 else s.max(axis=1)).tolist(), (d.labels(s, threshold) if good else [])
    pos = {i: k for k, i in enumerate(good)}
    rows: list[Verdict] = []
    for i, (path, (_arr, err, warn, info)) in enumerate(zip(paths, results, strict=True)):
        for d in dets:
            if (path, d.name) in skip:
                continue
            if i in pos:
                scores, labs = per_model[d.name]
                t = d.threshold if threshold is None else threshold
                note = adversarial_warning(info, size) if d.task == "adversarial" else warn
                rows.append(Verdict(path, d.task, labs[pos[i]], round(scores[pos[i]], 6), t, d.name, warning=note))
            else:
                rows.append(Verdict(path, d.task, None, None, None, d.name, error=err))
    return rows


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


def scan(inputs: list[str], models: Sequence[Model] | Model = "fast", threshold: float | None = None,  # long: I/O
         output: str | os.PathLike[str] | None = None, resume: bool = False, chunk: int = 512,
         workers: int | None = None, on_rows: Callable[[list[Verdict]], None] | None = None,
         bf16: bool = False, engine: str = "auto", progress: Progress | None = None,
         shard: tuple[int, int] | None = None) -> ScanRows:
    """Scan ``inputs`` (files, folders, globs) with one or more models; returns all new rows.

    The rows are a list of ``Verdict`` (a ``ScanRows``) whose ``skipped`` attribute lists ``(path, reason)`` for
    each file inside a folder that was not scanned (not an image, no extension, a format not supported, hidden;
    ``output.summarise_skipped`` words it). ``progress(done, total)`` follows the image files scored.

    ``output`` (``.jsonl``): rows are appended and fsynced chunk by chunk; ``resume`` skips rows already there.
    ``bf16``: bfloat16 inference (faster on CPUs with AVX-512-BF16/AMX; scores differ slightly from float32).
    ``engine``: ``auto`` runs models named by path or bundled name with ONNX Runtime when it is installed and has
    their architecture (``fakescope.inference.onnx_engine``: same scores to ~1e-6, no torch import), else torch.
    ``shard=(i, n)``: scan only shard ``i`` of ``n`` of the expanded file list (``fakescope.scanning.shard``).
    """
    if isinstance(models, (str, os.PathLike)) or not isinstance(models, Sequence):
        models = [models]
    check_threshold(threshold)
    plans = [plan_model(m) for m in models]  # unknown or malformed checkpoints fail here, before any output
    if output and resume:
        drop_torn_tail(output)
    skip = done_keys(output) if (output and resume) else set()
    if output and not resume and Path(output).exists():
        raise FileExistsError(f"{output} exists; pass resume=True (--resume) to continue it, or remove it")
    out_fh = None
    all_rows = ScanRows()
    try:
        for rows in _scan_iter(inputs, plans, threshold, chunk, workers, skip, bf16, engine, all_rows.skipped,
                               progress, shard):
            if output and out_fh is None:
                out_fh = open(output, "a", encoding="utf-8")  # noqa: SIM115 - closed below
            if out_fh is not None:
                out_fh.write(to_jsonl(rows))
                out_fh.flush()
                os.fsync(out_fh.fileno())
            all_rows.extend(rows)
            if on_rows is not None:
                on_rows(rows)
        if output and out_fh is None:  # no rows to add: the file still exists afterwards
            open(output, "a", encoding="utf-8").close()
    finally:
        if out_fh is not None:
            out_fh.close()
    return all_rows
