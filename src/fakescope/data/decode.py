"""Parallel decoding of many files into one uint8 array, with an on-disk cache keyed by file fingerprints.

``DecodeStream`` decodes chunk by chunk in background processes that start at once, so a caller can do other
work meanwhile (``fakescope scan`` imports torch and loads its models while the first chunks decode). Nothing here
imports torch, so worker processes stay light whatever the start method.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np

from ..io import atomic_open
from .images import DecodeInfo, ImageError, decode_image

CACHE_VERSION = 1


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


Decoded = tuple[np.ndarray | None, str | None, str | None, DecodeInfo | None]
# ``progress(done, total)``: called with 0 before decoding starts, then after each chunk (and once with
# ``total`` for a cache hit)
ProgressFn = Callable[[int, int], None]


def _decode_chunk(args: tuple[list[str], int, str]) -> list[Decoded]:
    paths, size, resample = args
    out: list[Decoded] = []
    for p in paths:
        try:
            arr, info = decode_image(p, size, resample)
            out.append((arr, None, info.warning, info))
        except ImageError as e:
            out.append((None, str(e), None, None))
    return out


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class DecodeStream:
    """``(start, results)`` per chunk of ``paths``, in order (results as in ``iter_decoded``).

    With ``workers`` > 0 the chunks go to that many processes as soon as the stream is created, at most
    ``MAX_AHEAD_BYTES`` of decoded pixels ahead of the consumer; with 0 each chunk is decoded here when reached.
    Use it as a context manager (or call ``close``) so that the processes end with the scan.
    """

    MAX_AHEAD_BYTES = 256 << 20

    def __init__(self, paths: list[str], size: int, resample: str = "bicubic", workers: int = 0,
                 chunk: int = 256) -> None:
        self.chunk = max(1, chunk)
        self._jobs = [(paths[i:i + self.chunk], size, resample) for i in range(0, len(paths), self.chunk)]
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list[Future[list[Decoded]]] = []
        self.workers = min(workers, len(self._jobs))
        if self.workers > 0:
            self._ahead = max(2 * self.workers, self.MAX_AHEAD_BYTES // (self.chunk * size * size * 3 + 1))
            self._pool = ProcessPoolExecutor(self.workers)
            for _ in range(min(self._ahead, len(self._jobs))):
                self._submit()

    def _submit(self) -> None:
        assert self._pool is not None
        self._futures.append(self._pool.submit(_decode_chunk, self._jobs[len(self._futures)]))

    def done(self) -> bool:
        """True once no chunk is left to decode (the workers, if any, have nothing more to do)."""
        if self._pool is None:
            return False
        return len(self._futures) == len(self._jobs) and all(f.done() for f in self._futures)

    def __iter__(self) -> Iterator[tuple[int, list[Decoded]]]:
        for i, job in enumerate(self._jobs):
            if self._pool is None:
                yield i * self.chunk, _decode_chunk(job)
                continue
            res = self._futures[i].result()
            self._futures[i] = _DONE  # drop the reference: the results now belong to the consumer
            if len(self._futures) < len(self._jobs):
                self._submit()
            yield i * self.chunk, res

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> DecodeStream:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


_DONE: Future[list[Decoded]] = Future()
_DONE.set_result([])


def iter_decoded(paths: list[str], size: int, resample: str = "bicubic", workers: int | None = None,
                 chunk: int = 256) -> Iterator[tuple[int, list[Decoded]]]:
    """Yield ``(start, results)`` per chunk, in order; results are ``(array|None, error|None, warning|None,
    DecodeInfo|None)`` (the info gives the file's own size and format). ``workers`` <= 1: decoded in this process."""
    workers = default_workers() if workers is None else workers
    parallel = workers > 1 and len(paths) > chunk
    with DecodeStream(paths, size, resample, workers if parallel else 0, chunk) as stream:
        yield from stream


def decode_many(paths: list[str], size: int, resample: str = "bicubic", workers: int | None = None,
                progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Decode all ``paths`` → ``(images uint8 NHWC, ok mask, per-file error or None)``."""
    images = np.zeros((len(paths), size, size, 3), np.uint8)
    ok = np.zeros(len(paths), bool)
    errors: list[str | None] = [None] * len(paths)
    if progress is not None:
        progress(0, len(paths))
    for start, res in iter_decoded(paths, size, resample, workers):
        for j, (arr, err, *_rest) in enumerate(res):
            if arr is not None:
                images[start + j] = arr
                ok[start + j] = True
            else:
                errors[start + j] = err
        if progress is not None:
            progress(start + len(res), len(paths))
    return images, ok, errors


def fingerprint(paths: list[str], size: int, resample: str) -> str:
    """Hash of file names, sizes and modification times plus decode settings."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{resample}".encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{os.path.abspath(p)}|missing\n".encode())
    return h.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("FAKESCOPE_CACHE", Path.home() / ".cache" / "fakescope"))


def cached_decode(paths: list[str], size: int, resample: str = "bicubic", workers: int | None = None,
                  use_cache: bool = True, progress: ProgressFn | None = None
                  ) -> tuple[np.ndarray, np.ndarray, list[str | None], str]:
    """``decode_many`` behind a uint8 ``.npy`` cache; returns ``(images, ok, errors, fingerprint)``."""
    fp = fingerprint(paths, size, resample)
    base = cache_dir() / fp[:32]
    if use_cache and (base.with_suffix(".npy")).exists() and (base.with_suffix(".json")).exists():
        try:
            meta = json.loads(base.with_suffix(".json").read_text())
            images = np.load(base.with_suffix(".npy"), allow_pickle=False)
            if images.shape == (len(paths), size, size, 3) and len(meta["errors"]) == len(paths):
                errors = meta["errors"]
                if progress is not None:
                    progress(len(paths), len(paths))
                return images, np.array([e is None for e in errors], bool), errors, fp
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            pass  # a broken cache entry is rebuilt below
    images, ok, errors = decode_many(paths, size, resample, workers, progress)
    if use_cache:
        try:
            with atomic_open(base.with_suffix(".npy")) as fh:
                np.save(fh, images, allow_pickle=False)
            with atomic_open(base.with_suffix(".json"), "w") as fh:
                json.dump({"errors": errors, "n": len(paths), "size": size}, fh)
        except OSError:
            pass  # caching is an optimisation; a read-only home must not stop training
    return images, ok, errors, fp
