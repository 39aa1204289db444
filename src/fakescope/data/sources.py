"""Dataset sources → ``ImageSet``: CIFAKE layout, two-class folders, class folders, CIFAR-10 batches, ``.npz``,
file lists."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .arrays import read_npz_or_fail
from .decode import ProgressFn, cached_decode, fingerprint
from .files import cifar_class_from_name, is_image_name
from .imageset import DataError, ImageSet, check_balance, per_class_choice, subsample_per_class
from .tasks import TASKS

_SYNTHETIC_NAMES = {"real": 0, "fake": 1, "clean": 0, "attacked": 1, "adversarial": 1, "adv": 1}


def class_dirs(root: Path, task: str) -> list[tuple[str, Path]]:
    """The class sub-folders of ``root`` in label order (REAL/clean first for binary tasks)."""
    subs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if task == "classify":
        return [(d.name, d) for d in subs]
    if len(subs) != 2:
        raise DataError(f"{root}: a two-class folder needs exactly 2 sub-folders, found {[d.name for d in subs]}")
    known = {d.name.lower(): d for d in subs}
    if all(k in _SYNTHETIC_NAMES for k in known):
        order = sorted(subs, key=lambda d: _SYNTHETIC_NAMES[d.name.lower()])
    else:
        order = subs
        warnings.warn(f"{root}: folder names {[d.name for d in subs]} are not REAL/FAKE; "
                      f"label 1 (detected) = {subs[1].name!r}", stacklevel=2)
    return [(d.name, d) for d in order]


def resolve_split(root: str | os.PathLike[str], split: str) -> Path:
    """CIFAKE layout (``root/train``, ``root/test``) → that split; otherwise ``root`` itself."""
    r = Path(root)
    if not r.is_dir():
        raise DataError(f"{root}: not a folder")
    return r / split if (r / split).is_dir() else r


def list_class_files(root: str | os.PathLike[str], task: str, split: str) -> tuple[list[str], list[int], list[str]]:
    """``(paths, labels, classes)`` of a CIFAKE-layout split, two-class folder or class folders, sorted."""
    base = resolve_split(root, split)
    dirs = class_dirs(base, task)
    paths: list[str] = []
    labels: list[int] = []
    for i, (_name, d) in enumerate(dirs):
        files = sorted(str(p) for p in d.rglob("*") if p.is_file() and is_image_name(p))
        paths += files
        labels += [i] * len(files)
    if not paths:
        raise DataError(f"{base}: no image files found under {[d.name for _, d in dirs]}")
    return paths, labels, [n for n, _ in dirs]


def load_folder(root: str | os.PathLike[str], task: str = "synthetic", size: int = 32, split: str = "train",
                workers: int | None = None, use_cache: bool = True, progress: ProgressFn | None = None,
                per_class: int = 0, seed: int = 0) -> ImageSet:
    """Load a CIFAKE-layout split, a two-class folder or class folders (``task='classify'``).

    ``per_class`` > 0: at most that many images of each class, the choice ``subsample_per_class(ds, per_class,
    seed)`` makes, and only those files are decoded. The fingerprint is always that of the whole folder.
    """
    paths, labels, names = list_class_files(root, task, split)
    if per_class:
        chosen = per_class_choice(np.asarray(labels), len(names), per_class, seed)
        sub = [paths[i] for i in chosen]
        images, ok, errors, _ = cached_decode(sub, size, workers=workers, use_cache=use_cache, progress=progress)
        if ok.all():  # else decode everything and choose among the readable files, as subsample_per_class does
            return _folder_set(sub, [labels[i] for i in chosen], names, task, images, ok, errors,
                               fingerprint(paths, size, "bicubic"))
    images, ok, errors, fp = cached_decode(paths, size, workers=workers, use_cache=use_cache, progress=progress)
    ds = _folder_set(paths, labels, names, task, images, ok, errors, fp)
    return subsample_per_class(ds, per_class, seed) if per_class else ds


def _folder_set(paths: list[str], labels: list[int], classes: list[str], task: str, images: np.ndarray,
                ok: np.ndarray, errors: list[str | None], fp: str) -> ImageSet:
    """The readable files of a decoded folder as an ``ImageSet`` (unreadable ones warned about and skipped)."""
    skipped = [(p, e) for p, e in zip(paths, errors, strict=True) if e is not None]
    if skipped:
        warnings.warn(f"{len(skipped)} unreadable file(s) skipped, e.g. {skipped[0][0]}: {skipped[0][1]}",
                      stacklevel=3)
    keep = np.flatnonzero(ok)
    y = np.asarray(labels, np.int64)[keep]
    cc = y.copy() if task == "classify" else np.array([cifar_class_from_name(p) for p in paths], np.int64)[keep]
    ds = ImageSet(images[keep], y, list(classes), cc, [paths[i] for i in keep], fingerprint=fp,
                  skipped=skipped)
    check_balance(ds)
    return ds


def load_npz(path: str | os.PathLike[str], label: int | None = None, classes: list[str] | None = None,
             task: str | None = None) -> ImageSet:
    """An ``.npz`` with ``images`` (optional ``labels``, and ``groups`` tying pairs, as in ``seed_dataset.npz``).

    ``label`` sets one label for all images. Classes: ``classes``, else by ``task`` (classify: one per label
    value), else clean/attacked. Labels outside the classes are refused.
    """
    arrays = read_npz_or_fail(path)
    images, groups = arrays.images, arrays.groups
    labels = arrays.labels if label is None else None
    if labels is None:
        labels = np.full(len(images), 0 if label is None else label, np.int64)
    if len(labels) != len(images) or (groups is not None and len(groups) != len(images)):
        raise DataError(f"{path}: {len(labels)} labels / {len(images) if groups is None else len(groups)} groups "
                        f"for {len(images)} images")
    if classes is None and task == "classify":
        classes = [str(k) for k in range(int(labels.max(initial=0)) + 1)]
    classes = classes or list(TASKS.get(task or "") or TASKS["adversarial"])
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        hint = (" (originals.npz/attacked.npz hold the victim's classes: pass their attack folder instead)"
                if Path(path).name in ("originals.npz", "attacked.npz") else "")
        raise DataError(f"{path}: labels span {labels.min()}..{labels.max()}, expected 0..{len(classes) - 1} "
                        f"for classes {classes}{hint}")
    return ImageSet(images, labels, classes, paths=[f"{path}#{i}" for i in range(len(images))],
                    groups=groups if groups is not None else np.zeros(0, np.int64))


def load_file_list(list_path: str | os.PathLike[str], size: int = 32, classes: list[str] | None = None,
                   workers: int | None = None) -> ImageSet:
    """A text file of ``path[,label]`` lines (relative paths are relative to the list's folder)."""
    base = Path(list_path).parent
    paths: list[str] = []
    labels: list[int] = []
    for n, line in enumerate(Path(list_path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p, _, lab = line.partition(",")
        paths.append(str(base / p.strip()) if not os.path.isabs(p.strip()) else p.strip())
        try:
            labels.append(int(lab) if lab.strip() else -1)
        except ValueError:
            raise DataError(f"{list_path}:{n}: label {lab.strip()!r} is not an integer") from None
    images, ok, errors, fp = cached_decode(paths, size, workers=workers)
    keep = np.flatnonzero(ok)
    return ImageSet(images[keep], np.asarray(labels, np.int64)[keep], classes or ["REAL", "FAKE"],
                    np.array([cifar_class_from_name(p) for p in paths], np.int64)[keep],
                    [paths[i] for i in keep], fingerprint=fp,
                    skipped=[(p, e) for p, e in zip(paths, errors, strict=True) if e])


def load_dataset(source: str | os.PathLike[str], task: str = "synthetic", size: int = 32, split: str = "train",
                 workers: int | None = None, progress: ProgressFn | None = None, per_class: int = 0,
                 seed: int = 0) -> ImageSet:
    """Dispatch on what ``source`` is: folder, CIFAR-10 python batches, attack folder(s) (``attacksets``),
    ``.npz`` or file list. ``per_class``/``seed``: a folder decodes only the images ``subsample_per_class`` would
    keep (other sources load whole; subsample them)."""
    s = str(source)
    if os.path.isdir(s):
        from .attacksets import find_attack_dirs, load_attack_sets
        from .cifar import cifar_batches_dir, load_cifar_batches

        if cifar_batches_dir(s) is not None:
            return load_cifar_batches(s, split, size, task)
        if find_attack_dirs(s, split):
            if task != "adversarial":
                raise DataError(f"{s} holds attack folders (clean/attacked pairs): use task 'adversarial'")
            return load_attack_sets(s, size, split)
        return load_folder(s, task, size, split, workers, progress=progress, per_class=per_class, seed=seed)
    if s.endswith(".npz"):
        return load_npz(s, task=task)
    if s.endswith((".txt", ".lst", ".csv")):
        return load_file_list(s, size, workers=workers)
    raise DataError(f"{s}: expected a folder, an .npz or a file list (.txt/.csv)")
