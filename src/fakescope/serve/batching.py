"""Micro-batched inference: one thread scores for every request, batching whatever is waiting per model.

Requests never hold a model: they hand ``(model, images)`` to ``Batcher.submit`` and await the scores. The
inference thread takes everything queued, groups it by model (at most ``max_batch`` images per forward pass,
oldest first) and scores each group in one call, so fifty concurrent one-image requests cost one forward pass per
model, not fifty, and a request with many images is scored in ``max_batch`` slices that other requests' images
can join. One thread keeps torch's intra-op threads to themselves instead of several callers oversubscribing the
CPUs. Grad-CAM never runs on these networks (``explain`` uses private copies), so no hook can meet a scan.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from ..inference.contract import Scorer


@dataclass
class _Job:
    model: Scorer
    images: np.ndarray
    future: Future[np.ndarray] = field(default_factory=Future)


class Batcher:
    """``submit(model, images)`` → a future of ``model.scores(images)``, computed on the inference thread."""

    def __init__(self, max_batch: int = 256) -> None:
        self.max_batch = max(1, int(max_batch))
        self.batches = 0  # forward passes made (each may hold several requests' images)
        self.images = 0
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, model: Scorer, images: np.ndarray) -> Future[np.ndarray]:
        """Queue ``images`` (uint8 NHWC at the model's size) for ``model``; big arrays go in ``max_batch`` slices."""
        self._start()
        parts = [images[i:i + self.max_batch] for i in range(0, len(images), self.max_batch)] or [images]
        jobs = [_Job(model, p) for p in parts]
        for job in jobs:
            self._queue.put(job)
        if len(jobs) == 1:
            return jobs[0].future
        return _joined([j.future for j in jobs])

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fakescope-inference", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop the inference thread once the queued work is done."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    def _run(self) -> None:
        waiting: list[_Job] = []
        while True:
            if not waiting:
                first = self._queue.get()
                if first is None:
                    return
                waiting.append(first)
            stop = False
            while True:  # everything queued meanwhile joins this round
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                waiting.append(job)
            waiting = self._round(waiting)
            if stop and not waiting:
                return

    def _round(self, waiting: list[_Job]) -> list[_Job]:
        """Score one batch per model (oldest jobs first, up to ``max_batch`` images); return the jobs left over."""
        groups: OrderedDict[int, list[_Job]] = OrderedDict()
        left: list[_Job] = []
        room: dict[int, int] = {}
        for job in waiting:
            key = id(job.model)
            n = room.get(key, self.max_batch)
            if job.future.cancelled() or (key in groups and len(job.images) > n):
                if not job.future.cancelled():
                    left.append(job)
                continue
            groups.setdefault(key, []).append(job)
            room[key] = n - len(job.images)
        for jobs in groups.values():
            self._score(jobs)
        return left

    def _score(self, jobs: list[_Job]) -> None:
        live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            batch = np.concatenate([j.images for j in live]) if len(live) > 1 else live[0].images
            scores = live[0].model.scores(batch) if len(batch) else np.zeros((0,), np.float32)
        except Exception as e:  # noqa: BLE001 - handed to the requests that asked, which report it per file
            for j in live:
                j.future.set_exception(e)
            return
        self.batches += 1
        self.images += len(batch)
        start = 0
        for j in live:
            j.future.set_result(scores[start:start + len(j.images)])
            start += len(j.images)


def _joined(parts: list[Future[np.ndarray]]) -> Future[np.ndarray]:
    """One future of the concatenated results of ``parts`` (in order)."""
    out: Future[np.ndarray] = Future()
    out.set_running_or_notify_cancel()
    lock, done = threading.Lock(), [0]

    def one_done(_f: Future[np.ndarray]) -> None:
        with lock:
            done[0] += 1
            if done[0] < len(parts):
                return
        errors = [f.exception() for f in parts if not f.cancelled() and f.exception() is not None]
        if errors:
            out.set_exception(errors[0])
        elif any(f.cancelled() for f in parts):
            out.set_exception(RuntimeError("scoring was cancelled"))
        else:
            out.set_result(np.concatenate([f.result() for f in parts]))

    for f in parts:
        f.add_done_callback(one_done)
    return out


__all__ = ["Batcher"]
