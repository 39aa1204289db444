"""Data sources, decoding, validation and caching."""

from .arrays import images_from_array
from .decode import cached_decode, decode_many, iter_decoded
from .files import cifar_class_from_name, expand_paths
from .images import ImageError, decode_image
from .imageset import DataError, ImageSet, train_val_split
from .sources import load_dataset, load_folder, load_npz

__all__ = [
    "DataError", "ImageError", "ImageSet", "cached_decode", "cifar_class_from_name", "decode_image", "decode_many",
    "expand_paths", "images_from_array", "iter_decoded", "load_dataset", "load_folder", "load_npz",
    "train_val_split",
]
