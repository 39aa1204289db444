"""One request's way through the server: spool → headers and budget → decode → batched scoring → rows.

Uploads are written to a private temporary folder and decoded by ``decode_image`` (through ``iter_decoded``),
exactly as ``fakescope scan`` files are, and the rows come from the scan's own row builder, so a file gets the
same verdict, warning or error from both. What the server adds is the budget (``decoding.plan``), where each
file is decoded (``decoding.Decoder``) and how the scoring is shared between requests (``batching.Batcher``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..data.decode import Decoded
from ..inference.contract import Scorer
from ..scanning.output import Verdict
from ..scanning.scan import verdict_rows as scan_rows  # the scan's row builder: same verdicts, warnings and errors
from .batching import Batcher
from .decoding import Decoder, Plan, decode_files, give_back_memory, plan
from .guard import Slots
from .limits import Limits

TRIM_BYTES = 8 << 20  # after a request that brought this much data in, freed memory goes back to the OS
LIGHT_CHUNK = 256  # light files decoded per thread-pool call
_REQUESTS = itertools.count()  # names the spooled files of each request apart


class RequestRefused(Exception):
    """The request as a whole is refused: ``status`` and the JSON ``body`` (``detail``, ``limit``...)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers, extra


@dataclass
class Engine:
    """What requests share: the limits, the decoder, the batcher and the heavy-request slots."""

    limits: Limits
    decoder: Decoder = field(init=False)
    batcher: Batcher = field(init=False)
    heavy_slots: Slots = field(init=False)

    spool_dir: str = field(init=False)

    def __post_init__(self) -> None:
        self.decoder = Decoder(self.limits)
        self.batcher = Batcher(self.limits.max_batch)
        self.heavy_slots = Slots(self.limits.max_heavy_pending)
        self.spool_dir = tempfile.mkdtemp(prefix="fakescope-serve-")  # uploads are written here, and deleted
        weakref.finalize(self, shutil.rmtree, self.spool_dir, True)

    def close(self) -> None:
        self.batcher.close()
        self.decoder.close()
        shutil.rmtree(self.spool_dir, ignore_errors=True)


class _Scored:
    """A ``Scorer`` whose scores for this batch are already known (from the batcher), for the scan's rows."""

    def __init__(self, model: Scorer, scores: np.ndarray) -> None:
        self._model, self._scores = model, scores

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def scores(self, images: np.ndarray, batch_size: int | None = None, bf16: bool = False) -> np.ndarray:
        return self._scores


def spool(uploads: Sequence[UploadFile], folder: str, prefix: str = "") -> list[str]:
    """Write each upload to ``folder`` (``decode_image`` reads files); returns their paths, in order."""
    paths = []
    os.makedirs(folder, exist_ok=True)
    for i, up in enumerate(uploads):
        path = os.path.join(folder, f"{prefix}upload-{i:05d}")
        up.file.seek(0)
        with open(path, "wb") as fh:
            shutil.copyfileobj(up.file, fh)
        paths.append(path)
    return paths


def by_size(models: Sequence[Scorer]) -> dict[int, list[Scorer]]:
    """Models grouped by input size (each size is decoded once)."""
    groups: dict[int, list[Scorer]] = {}
    for m in models:
        groups.setdefault(m.image_size, []).append(m)
    return groups


def over_budget(pixels: int, limits: Limits, partial: bool = False) -> RequestRefused:
    """The 413 of a request whose files decode to ``pixels`` (``partial``: counted before the body was all read;
    the connection then closes, as the rest of the body is not read)."""
    counted = f"at least {pixels:,} pixels (the files read so far)" if partial else f"{pixels:,} pixels"
    return RequestRefused(413, f"request too large to decode: its files decode to {counted}; this server takes at "
                               f"most {limits.max_request_pixels:,} per request (--max-request-pixels). Send fewer "
                               "or smaller images per request.", headers={"Connection": "close"} if partial else None,
                          limit="max_request_pixels", allowed=limits.max_request_pixels, requested=pixels)


def check_budget(plans: Sequence[Plan], limits: Limits) -> None:
    """413 for a request whose files would decode to more than ``max_request_pixels`` altogether."""
    total = sum(p.total for p in plans)
    if total > limits.max_request_pixels:
        raise over_budget(total, limits)


def decode_light(paths: list[str], p: Plan, size: int, resample: str, heavy_pixels: int) -> list[Decoded | None]:
    """Refused files get their error, light ones are decoded here (the calling thread); heavy ones stay None."""
    out: list[Decoded | None] = [None] * len(paths)
    for i, why in p.refused.items():
        out[i] = (None, why, None, None)
    heavy = set(p.heavy(heavy_pixels))
    light = [i for i in range(len(paths)) if out[i] is None and i not in heavy]
    for k in range(0, len(light), LIGHT_CHUNK):
        idx = light[k:k + LIGHT_CHUNK]
        try:
            done = decode_files([paths[i] for i in idx], size, resample)
        except Exception as e:  # noqa: BLE001 - MemoryError and the like: those files fail, the request answers
            done = [(None, f"internal error: {type(e).__name__}: {e}", None, None)] * len(idx)
        for i, r in zip(idx, done, strict=True):
            out[i] = r
    return out


async def decode_heavy(engine: Engine, paths: list[str], out: list[Decoded | None], size: int,
                       resample: str) -> list[Decoded]:
    """The files ``decode_light`` left (heavy ones), decoded by the worker processes, all submitted at once."""
    tasks = {i: asyncio.ensure_future(engine.decoder.heavy(paths[i], size, resample))
             for i, r in enumerate(out) if r is None}
    try:
        for i, task in tasks.items():
            out[i] = await task
    finally:
        for task in tasks.values():
            task.cancel()
    return [r if r is not None else (None, "internal error: not decoded", None, None) for r in out]


async def score_rows(engine: Engine, paths: list[str], decoded: list[Decoded], models: Sequence[Scorer],
                     threshold: float | None, size: int) -> list[Verdict]:
    """The scan's rows for decoded files, every model scored through the batcher (all models at once)."""
    good = [r[0] for r in decoded if r[0] is not None]
    scored: list[Scorer] = list(models)
    if good:
        batch = np.stack(good)
        results = await asyncio.gather(*(asyncio.wrap_future(engine.batcher.submit(m, batch)) for m in models),
                                       return_exceptions=True)
        if any(isinstance(r, BaseException) for r in results):
            err = next(r for r in results if isinstance(r, BaseException))
            return [Verdict(p, m.task, None, None, None, m.name, error=f"internal error: {type(err).__name__}: {err}")
                    for p in paths for m in models]
        scored = [_Scored(m, s) for m, s in zip(models, results, strict=True)]  # type: ignore[misc]
    return scan_rows(paths, decoded, scored, threshold, set(), False, size)


def jsonable(obj: Any) -> Any:
    """Plain JSON: numpy scalars → Python, non-finite floats → None (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class Workspace:
    """One request's files: header plans per input size, the spooled copies, its heavy slot; ``close()`` always.

    ``prepare`` does the light work in one thread-pool call: headers (read from the uploads as received, so a
    request over budget costs no disk write), budget, heavy slot, spooling, and the decoding of light files.
    """

    def __init__(self, engine: Engine, uploads: Sequence[UploadFile], models: Sequence[Scorer]) -> None:
        self.engine, self.uploads, self.groups = engine, uploads, by_size(models)
        self.paths: list[str] = []
        self.plans: dict[int, Plan] = {}
        self._light: dict[int, list[Decoded | None]] = {}
        self._kept: set[int] = set()  # indices of spooled files still on disk
        self._slot = False
        self._bytes = sum(u.size or 0 for u in uploads)

    def _prepare(self) -> None:
        limits = self.engine.limits
        files = [u.file for u in self.uploads]
        self.plans = {size: plan(files, size, limits) for size in self.groups}
        check_budget(list(self.plans.values()), limits)
        if any(p.heavy(limits.heavy_pixels) for p in self.plans.values()):
            if not self.engine.heavy_slots.try_take():
                raise RequestRefused(503, f"server busy: {limits.max_heavy_pending} requests with large images in "
                                          f"progress (--max-heavy-pending); retry in {limits.retry_after} s",
                                     headers={"Retry-After": str(limits.retry_after)},
                                     retry_after=limits.retry_after)
            self._slot = True
        self._kept = set(range(len(self.uploads)))
        self.paths = spool(self.uploads, self.engine.spool_dir, f"{next(_REQUESTS)}-")
        for size, group in self.groups.items():
            self._light[size] = decode_light(self.paths, self.plans[size], size, group[0].spec.resample,
                                             limits.heavy_pixels)
        self._unlink(i for i in range(len(self.paths)) if all(d[i] is not None for d in self._light.values()))

    def _unlink(self, indices: Iterable[int]) -> None:
        """Delete spooled files that are no longer needed (decoded, or refused)."""
        for i in indices:
            with contextlib.suppress(OSError):
                os.unlink(self.paths[i])
            self._kept.discard(i)

    async def prepare(self) -> None:
        await run_in_threadpool(self._prepare)

    async def decoded(self, size: int) -> list[Decoded]:
        """Every file decoded at ``size`` (heavy ones awaited from the workers) or its error."""
        return await decode_heavy(self.engine, self.paths, self._light[size], size,
                                  self.groups[size][0].spec.resample)

    def _big(self) -> bool:
        """Whether this request brought in or decoded here enough that freed memory should go back to the OS."""
        light = self.engine.limits.heavy_pixels
        return self._bytes > TRIM_BYTES or sum(n for p in self.plans.values() for n in p.pixels if n <= light) > light

    def _cleanup(self) -> None:
        self._unlink(list(self._kept))
        if self._big():
            give_back_memory()

    async def close(self) -> None:
        """Free the heavy slot, delete the files, and give memory back after a big request."""
        if self._slot:
            self.engine.heavy_slots.give()
            self._slot = False
        if self._kept or self._big():
            await run_in_threadpool(self._cleanup)


async def scan_files(engine: Engine, uploads: Sequence[UploadFile], models: Sequence[Scorer],
                     threshold: float | None) -> list[dict[str, Any]]:
    """One row per file per model, in upload order (``path``: the upload's file name)."""
    names = [u.filename or f"upload-{i}" for i, u in enumerate(uploads)]
    ws = Workspace(engine, uploads, models)
    rows: dict[tuple[str, str], Verdict] = {}
    try:
        await ws.prepare()
        for size, group in ws.groups.items():
            for r in await score_rows(engine, ws.paths, await ws.decoded(size), group, threshold, size):
                rows[(r.path, r.model)] = r
    finally:
        await ws.close()
    out = []
    for path, name in zip(ws.paths, names, strict=True):
        for m in models:
            row = rows[(path, m.name)]
            row.path = name
            out.append(jsonable(row.to_dict()))
    return out


__all__ = ["Engine", "RequestRefused", "Workspace", "by_size", "check_budget", "decode_heavy", "decode_light",
           "jsonable", "over_budget", "scan_files", "score_rows", "spool"]
