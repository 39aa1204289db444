"""Decoding uploads within a budget: read every header first, then decode small files here and big ones elsewhere.

``plan`` opens each file's header (Pillow reads the size without decoding a pixel) and counts the pixels the
decode will produce: a big JPEG counts at the reduced size it is decoded at (``draft``), as ``decode_image`` does.
A file over ``max_file_pixels`` is refused from its header; a request over ``max_request_pixels`` is refused whole.

``Decoder`` then decodes files up to ``heavy_pixels`` in the calling thread and heavier ones in a small pool of
worker processes at low CPU priority (``os.nice``), one file per task: a 7000x7000 PNG takes a worker's CPU and
memory, never the server's, and the worker gives that memory back to the OS (``malloc_trim``) after each file.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import BinaryIO

from ..data.decode import Decoded, iter_decoded
from ..data.images import FORMATS
from .limits import Limits


def give_back_memory() -> bool:
    """Return freed heap memory to the OS (glibc ``malloc_trim``); False where the C library has none."""
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS, Windows)
        return False


def decoded_pixels(source: str | BinaryIO, size: int) -> tuple[int, int, int] | None:
    """``(width, height, pixels decoded)`` from the header of a file (a path or an open binary file, read from its
    start and rewound), or None if Pillow cannot read it (the decode then says why: it fails at the same header)."""
    from PIL import Image

    if not isinstance(source, str):
        source.seek(0)
    try:
        with Image.open(source, formats=FORMATS) as im:
            w, h = im.size
            if im.format == "JPEG" and min(w, h) > size * 2:
                im.draft("RGB", (size * 2, size * 2))  # what decode_image asks for: the DCT-domain reduction
            dw, dh = im.size
    except Exception:  # noqa: BLE001 - any unreadable header: decode_image gives the per-file error
        return None
    finally:
        if not isinstance(source, str):
            source.seek(0)
    return w, h, dw * dh


@dataclass
class Plan:
    """What decoding the files at one size will cost: pixels per file (0: unreadable header) and refusals."""

    pixels: list[int]
    refused: dict[int, str]  # file index → why it is not decoded (over the per-file limit)

    @property
    def total(self) -> int:
        return sum(p for i, p in enumerate(self.pixels) if i not in self.refused)

    def heavy(self, limit: int) -> list[int]:
        return [i for i, p in enumerate(self.pixels) if p > limit and i not in self.refused]


def plan(sources: Sequence[str | BinaryIO], size: int, limits: Limits) -> Plan:
    """Read every header (paths or open files); refuse files over the per-file limit (they cost nothing more)."""
    pixels, refused = [], {}
    for i, p in enumerate(sources):
        found = decoded_pixels(p, size)
        n = found[2] if found else 0
        pixels.append(n)
        if found and n > limits.max_file_pixels:
            refused[i] = (f"refused before decoding: {found[0]}x{found[1]} decodes to {n:,} pixels, over this "
                          f"server's limit of {limits.max_file_pixels:,} per file (--max-file-pixels)")
    return Plan(pixels, refused)


def _nice(step: int) -> None:
    """A worker's start: lower CPU priority, and (Linux) the batch policy, so it never preempts the server."""
    if step and hasattr(os, "nice"):  # POSIX
        os.nice(step)
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def decode_files(paths: list[str], size: int, resample: str) -> list[Decoded]:
    """Decode in this process (a worker's task); the memory a big image took goes back to the OS afterwards."""
    out = [r for _start, chunk in iter_decoded(paths, size, resample, workers=0) for r in chunk]
    give_back_memory()
    return out


class Decoder:
    """Light files in the caller's thread, heavy ones in ``workers`` low-priority processes (0: one thread)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._pool: Executor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> Executor:
        with self._lock:
            if self._pool is None:
                if self.limits.decode_workers == 0:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="fakescope-decode")
                else:
                    self._pool = ProcessPoolExecutor(self.limits.decode_workers, mp_context=get_context("spawn"),
                                                     initializer=_nice, initargs=(self.limits.decode_nice,))
            return self._pool

    def warm_up(self) -> None:
        """Start the worker processes now (a spawn takes a few hundred ms) rather than on the first big file."""
        if self.limits.decode_workers:
            for f in [self._executor().submit(decode_files, [], 1, "bicubic") for _ in
                      range(self.limits.decode_workers)]:
                f.result()

    def submit_heavy(self, path: str, size: int, resample: str) -> tuple[Future[list[Decoded]], Executor]:
        """One heavy file, decoded by a worker: ``(future, the pool it runs in)`` for ``result``."""
        for attempt in (0, 1):
            pool = self._executor()
            try:
                return pool.submit(decode_files, [path], size, resample), pool
            except BrokenProcessPool:  # a worker died earlier: start a fresh pool, once
                self._reset(pool)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _reset(self, pool: Executor) -> None:
        with self._lock:
            if self._pool is not pool:
                return
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    async def heavy(self, path: str, size: int, resample: str) -> Decoded:
        """One heavy file, decoded by a worker; if that worker dies (killed for memory...) only its files fail."""
        future, pool = self.submit_heavy(path, size, resample)
        try:
            return (await asyncio.wrap_future(future))[0]
        except BrokenProcessPool:
            self._reset(pool)
            return None, "internal error: the decoding process died (out of memory?)", None, None

    def close(self) -> None:
        if self._pool is not None:
            self._reset(self._pool)


__all__ = ["Decoder", "Plan", "decode_files", "decoded_pixels", "give_back_memory", "plan"]
