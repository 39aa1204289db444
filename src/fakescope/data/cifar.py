"""CIFAR-10's python batches (``data_batch_1..5``, ``test_batch``, ``batches.meta``) read WITHOUT ``pickle.load``.

The batches are pickled dicts. Unpickling a file a user hands us could run any code, so ``SafeBatchUnpickler``
refuses every global except the three numpy names that rebuild a plain ``ndarray``: ``_reconstruct``,
``ndarray`` and ``dtype`` (from ``numpy.core.multiarray`` / ``numpy._core.multiarray`` and ``numpy``), and even
those only in the shape numpy itself pickles them (an empty array, then filled from the file's bytes). Dicts,
lists, bytes, strings and ints need no globals. Protocol-5 numpy pickles (``_frombuffer``) and Python 3
protocol-2 re-pickles (``_codecs.encode``) are refused too: CIFAR-10's own files are Python 2 pickles.
Everything read is then validated (uint8 (N, 3072) data, labels 0..9, one per row) before it becomes an
``ImageSet``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .imageset import DataError, ImageSet
from .tasks import CIFAR10_CLASSES

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
MAX_BATCH_BYTES = 256 << 20  # a real batch is ~31 MB
SIDE = 32


class _NDArrayName:
    """Stands for ``numpy.ndarray`` inside a batch: only ``_reconstruct`` turns it into an (empty) array, so the
    pickle cannot call ``ndarray.__new__`` itself with a huge shape. A real array is rebuilt empty, then filled by
    ``__setstate__``, which checks that the bytes in the file match the shape: memory stays bounded by file size."""


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR batch may name, resolved here (never by importing what the file names)."""
    try:
        from numpy._core.multiarray import _reconstruct as np_reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct as np_reconstruct  # type: ignore[no-redef]

    def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not _NDArrayName or shape != (0,):
            raise UnsafePickleError(f"refused ndarray reconstruction {shape!r}: numpy pickles an empty (0,) array")
        return np_reconstruct(np.ndarray, (0,), dtype)

    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): _NDArrayName, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _reconstruct
    return allowed


class UnsafePickleError(DataError):
    """A pickle names something outside the allow-list; nothing from it was executed."""


class SafeBatchUnpickler(pickle.Unpickler):
    """An ``Unpickler`` whose ``find_class`` allows only numpy's array-rebuilding globals (see module doc)."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        obj = self._allowed.get((module, name))
        if obj is None:
            raise UnsafePickleError(f"refused to load global {module}.{name}: a CIFAR-10 batch holds only dicts, "
                                    "lists, bytes, ints and numpy arrays")
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused a persistent id: a CIFAR-10 batch has none")


def safe_load_batch(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse one pickled batch with ``SafeBatchUnpickler``; bytes keys become str. Raises ``DataError``."""
    p = Path(path)
    size = p.stat().st_size
    if size > MAX_BATCH_BYTES:
        raise DataError(f"{p}: {size} bytes is too large for a CIFAR-10 batch")
    raw = p.read_bytes()
    try:
        obj = SafeBatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{p}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: not a readable CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{p}: a CIFAR-10 batch is a dict, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _batch_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Validated (uint8 NHWC images, int64 labels) of one batch file."""
    d = safe_load_batch(path)
    data, labels = d.get("data"), d.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE**2:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 (N, {3 * SIDE**2}) array, found {desc}")
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        y = labels.astype(np.int64)
    elif isinstance(labels, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        y = np.asarray(labels, np.int64)
    else:
        raise DataError(f"{path}: 'labels' must be a list of ints")
    if len(y) != len(data):
        raise DataError(f"{path}: {len(y)} labels for {len(data)} images")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{path}: labels must be 0..9, found {y.min()}..{y.max()}")
    # channel-planar rows (1024 red, 1024 green, 1024 blue) → NHWC
    return np.ascontiguousarray(data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)), y


def _class_names(root: Path) -> list[str]:
    if not (root / META).is_file():
        return list(CIFAR10_CLASSES)
    names = safe_load_batch(root / META).get("label_names")
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{root / META}: 'label_names' must be a list of 10 names")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def cifar_batches_dir(root: str | os.PathLike[str]) -> Path | None:
    """``root`` (or its ``cifar-10-batches-py`` sub-folder) when it holds CIFAR-10 python batches, else ``None``."""
    for d in (Path(root), Path(root) / "cifar-10-batches-py"):
        if d.is_dir() and any((d / n).is_file() for n in (*TRAIN_BATCHES, TEST_BATCH)):
            return d
    return None


def load_cifar_batches(root: str | os.PathLike[str], split: str = "train", size: int = 32,
                       task: str = "classify") -> ImageSet:
    """CIFAR-10 python batches → ``ImageSet`` (labels = CIFAR-10 classes). ``split``: ``train`` or ``test``.

    ``train`` reads whichever of ``data_batch_1..5`` are present (at least one). Images are resized (bicubic)
    when ``size`` is not 32. Only ``task='classify'`` makes sense: the batches hold class labels only.
    """
    if task != "classify":
        raise DataError(f"{root}: CIFAR-10 batches hold class labels only; use task 'classify', not {task!r}")
    d = cifar_batches_dir(root)
    if d is None:
        raise DataError(f"{root}: no CIFAR-10 batches ({', '.join(TRAIN_BATCHES)}, {TEST_BATCH})")
    if split not in ("train", "test"):
        raise DataError(f"{root}: split must be 'train' or 'test', got {split!r}")
    names = [n for n in (TRAIN_BATCHES if split == "train" else (TEST_BATCH,)) if (d / n).is_file()]
    if not names:
        raise DataError(f"{d}: no {split} batch found")
    parts = [_batch_arrays(d / n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if size != SIDE:
        from PIL import Image

        images = np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.Resampling.BICUBIC))
                           for a in images]) if len(images) else np.zeros((0, size, size, 3), np.uint8)
    h = hashlib.sha256(f"cifar-batches:{split}:{size}:".encode())
    h.update(images.tobytes())
    h.update(labels.tobytes())
    paths = [f"{d / n}#{i}" for n, (im, _) in zip(names, parts, strict=True) for i in range(len(im))]
    return ImageSet(images, labels, _class_names(d), labels.copy(), paths, fingerprint=h.hexdigest())
