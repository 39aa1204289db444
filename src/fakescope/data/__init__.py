"""Data: sources, decoding, validation, caching, transforms, splits and the task table.

Names are imported on first use (PEP 562), so ``fakescope.data.tasks`` (read by the models' specs) costs no numpy
or Pillow import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .arrays import images_from_array, read_npz
    from .decode import cached_decode, decode_many, iter_decoded
    from .files import cifar_class_from_name, expand_paths
    from .images import ImageError, decode_image
    from .imageset import DataError, ImageSet, subsample_per_class, train_val_split
    from .sources import load_dataset, load_folder, load_npz

_LAZY = {
    "images_from_array": "arrays", "read_npz": "arrays", "cached_decode": "decode", "decode_many": "decode",
    "iter_decoded": "decode", "cifar_class_from_name": "files", "expand_paths": "files", "ImageError": "images",
    "decode_image": "images", "DataError": "imageset", "ImageSet": "imageset", "subsample_per_class": "imageset",
    "train_val_split": "imageset", "load_dataset": "sources", "load_folder": "sources", "load_npz": "sources",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DataError", "ImageError", "ImageSet", "cached_decode", "cifar_class_from_name", "decode_image", "decode_many",
    "expand_paths", "images_from_array", "iter_decoded", "load_dataset", "load_folder", "load_npz", "read_npz",
    "subsample_per_class", "train_val_split",
]
