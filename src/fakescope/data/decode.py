"""Parallel decoding of many files into one uint8 array, with an on-disk cache keyed by file fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..io import atomic_open
from .images import DecodeInfo, ImageError, decode_image

CACHE_VERSION = 1


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


Decoded = tuple[np.ndarray | None, str | None, str | None, DecodeInfo | None]


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


def iter_decoded(paths: list[str], size: int, resample: str = "bicubic", workers: int | None = None,
                 chunk: int = 256):
    """Yield ``(start, results)`` per chunk, in order; results are ``(array|None, error|None, warning|None,
    DecodeInfo|None)`` (the info gives the file's own size and format)."""
    workers = default_workers() if workers is None else workers
    chunks = [(paths[i:i + chunk], size, resample) for i in range(0, len(paths), chunk)]
    if workers <= 1 or len(chunks) <= 1:
        for i, c in enumerate(chunks):
            yield i * chunk, _decode_chunk(c)
        return
    with ProcessPoolExecutor(workers) as ex:
        for i, res in enumerate(ex.map(_decode_chunk, chunks)):
            yield i * chunk, res


def decode_many(paths: list[str], size: int, resample: str = "bicubic", workers: int | None = None,
                progress: object | None = None) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Decode all ``paths`` → ``(images uint8 NHWC, ok mask, per-file error or None)``."""
    images = np.zeros((len(paths), size, size, 3), np.uint8)
    ok = np.zeros(len(paths), bool)
    errors: list[str | None] = [None] * len(paths)
    for start, res in iter_decoded(paths, size, resample, workers):
        for j, (arr, err, *_rest) in enumerate(res):
            if arr is not None:
                images[start + j] = arr
                ok[start + j] = True
            else:
                errors[start + j] = err
        if progress is not None:
            progress(len(res))  # type: ignore[operator]
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
                  use_cache: bool = True, progress: object | None = None
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
