"""Scans on a Ray cluster (``pip install "fakescope[ray]"``): ``Predictor`` for ``Dataset.map_batches`` and the
``scan_ray`` front end (``fakescope scan --engine ray``). The rows are those of ``fakescope scan``, per-file errors
included; nothing here imports Ray until ``scan_ray`` runs.

Use ``Predictor`` on any Ray dataset with a ``path`` column (files every worker can read) or a ``bytes`` column
(e.g. ``ray.data.read_binary_files(..., include_paths=True)``; without a ``path`` column a row's path is
``sha256:<digest of the bytes>``)::

    import ray
    from fakescope.scanning.ray import Predictor

    ds = ray.data.read_binary_files("s3://bucket/uploads/", include_paths=True)
    rows = ds.map_batches(Predictor, fn_constructor_kwargs={"models": ["fast"]}, batch_size=512,
                          compute=ray.data.ActorPoolStrategy(size=8), num_cpus=1)
    rows.write_json("s3://bucket/verdicts/")

A worker that dies (killed, out of memory, its node lost) is restarted by Ray and its batch is run again: Ray Data
gives its map actors ``max_restarts=-1`` and ``max_task_retries=-1`` (retry without limit; Ray 2.60 deprecates
passing them). A batch is scored as a whole and its rows are kept only when it completes, so a retried batch gives
each row once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.arrays import is_array_file
from ..data.decode import Decoded, iter_decoded
from ..data.files import expand_paths
from .output import FIELDS, ScanRows, Verdict
from .scan import display_path, load_scorers, plan_model, scan, verdict_rows
from .shard import take_shard


class Predictor:
    """A callable class for ``Dataset.map_batches``: a batch ``{"path": [...]}`` or ``{"bytes": [...]}`` in, the
    columns of ``fakescope scan``'s rows out (one row per file and model; ``error`` set for a file that could not be
    read). The models load once per worker, on ONNX Runtime where ``engine`` allows it, as in ``fakescope scan``."""

    def __init__(self, models: str | Sequence[str] = "fast", threshold: float | None = None,
                 engine: str = "auto", bf16: bool = False) -> None:
        names = [models] if isinstance(models, str) else list(models)
        plans = [plan_model(m) for m in names]
        sizes = {p.spec.image_size for p in plans}
        if len(sizes) != 1:
            raise ValueError(f"models in one scan must share an input size, got {sorted(sizes)}")
        self.size, self.resample = sizes.pop(), plans[0].spec.resample
        self.threshold, self.bf16 = threshold, bf16
        self.dets = load_scorers(plans, engine, bf16)
        self._tmp = tempfile.TemporaryDirectory(prefix="fakescope-ray-")

    def _decode_bytes(self, blobs: Sequence[bytes]) -> list[Decoded]:
        """Each blob through the same file decoder as a scan (size limits, formats), via a private temp file."""
        out: list[Decoded] = []
        path = os.path.join(self._tmp.name, "image")
        for blob in blobs:
            with open(path, "wb") as fh:
                fh.write(bytes(blob))
            out.extend(next(iter(iter_decoded([path], self.size, self.resample, workers=0)))[1])
        return out

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        if "bytes" in batch:
            blobs = list(batch["bytes"])
            keys = ([str(p) for p in batch["path"]] if "path" in batch else
                    [f"sha256:{hashlib.sha256(bytes(b)).hexdigest()}" for b in blobs])
            results = self._decode_bytes(blobs)
        elif "path" in batch:
            keys = [str(p) for p in batch["path"]]
            results = next(iter(iter_decoded(keys, self.size, self.resample, workers=0, chunk=len(keys) or 1)),
                           (0, []))[1]
        else:
            raise ValueError(f"a batch needs a 'path' or a 'bytes' column, got {sorted(batch)}")
        rows = verdict_rows(keys, results, self.dets, self.threshold, set(), self.bf16, self.size)
        return columns(rows)


def columns(rows: list[Verdict]) -> dict[str, np.ndarray]:
    """Rows as one object array per field (Ray turns them into nullable Arrow columns)."""
    return {f: np.array([getattr(r, f) for r in rows], dtype=object) for f in FIELDS}


def _null(v: Any) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and bool(np.isnan(v)))


def _verdicts(batch: dict[str, Any]) -> list[Verdict]:
    """Rows back from a batch of ``Predictor`` columns (Arrow gives an all-null column as NaN floats)."""
    cols = {f: [None if _null(v) else v for v in batch[f]] for f in FIELDS}
    text = {f: [None if v is None else str(v) for v in cols[f]] for f in FIELDS if f not in ("score", "threshold")}
    num = {f: [None if v is None else float(v) for v in cols[f]] for f in ("score", "threshold")}
    return [Verdict(text["path"][i], text["task"][i], text["label"][i], num["score"][i], num["threshold"][i],
                    text["model"][i], text["error"][i], text["warning"][i]) for i in range(len(cols["path"]))]


def scan_ray(inputs: list[str], models: str | Sequence[str] = "fast", threshold: float | None = None,
             batch_size: int = 256, concurrency: int | None = None, engine: str = "auto", bf16: bool = False,
             shard: tuple[int, int] | None = None,
             address: str | None = None) -> ScanRows:
    """``scan``'s rows, in its order, with the image files scored by ``Predictor`` actors on Ray.

    Connects to the cluster at ``address`` (or ``RAY_ADDRESS``), or starts a local one, unless Ray is already
    initialised. ``concurrency``: actors (default: one per CPU of the cluster). A dead actor is restarted and its
    batch retried (Ray Data's defaults). ``.npz`` inputs are scored here, in the driver.
    """
    import ray

    names = [models] if isinstance(models, str) else list(models)
    plans = [plan_model(m) for m in names]  # unknown or malformed checkpoints fail here, before Ray starts
    skipped: list[tuple[str, str]] = []
    files, problems = expand_paths(inputs, skipped=skipped)
    if shard is not None:
        files, problems = take_shard(files, problems, shard, key=display_path)
    rows = ScanRows([Verdict(display_path(item), p.spec.task, None, None, None, p.name, error=msg)
                     for item, msg in problems for p in plans], skipped)  # skipped: as scan() reports them
    arrays = [f for f in files if is_array_file(f)]
    if arrays:
        rows += scan(arrays, names, threshold=threshold, bf16=bf16, engine=engine)
    todo = [f for f in files if not is_array_file(f)]
    if not todo:
        return rows
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    ctx = ray.data.DataContext.get_current()
    order = ctx.execution_options.preserve_order
    try:
        ctx.execution_options.preserve_order = True  # rows in the order of the files, as scan gives them
        ds = ray.data.from_items([{"path": f} for f in todo]).map_batches(
            Predictor, fn_constructor_kwargs={"models": names, "threshold": threshold, "engine": engine,
                                              "bf16": bf16},
            batch_size=batch_size, batch_format="numpy", num_cpus=1, compute=ray.data.ActorPoolStrategy(
                size=concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))))
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            rows += _verdicts(batch)
    finally:
        ctx.execution_options.preserve_order = order
        if started:
            ray.shutdown()
    return rows
