"""Finding image files: files, folders (recursive) and globs; CIFAKE file-name parsing."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from .images import IMAGE_EXTS

# CIFAKE names: "NNNN (k).jpg" for CIFAR-10 class k = 2..10, bare "NNNN.jpg" for class 1.
_CIFAKE_NAME = re.compile(r"^\d+(?: \((\d+)\))?\.[A-Za-z]+$")


def cifar_class_from_name(name: str) -> int:
    """CIFAR-10 class index 0..9 parsed from a CIFAKE file name, or -1 when the name doesn't follow it."""
    m = _CIFAKE_NAME.match(os.path.basename(name))
    if not m:
        return -1
    k = int(m.group(1)) if m.group(1) else 1
    return k - 1 if 1 <= k <= 10 else -1


def is_image_name(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTS


def expand_paths(inputs: list[str], recursive: bool = True) -> tuple[list[str], list[tuple[str, str]]]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of files.

    Explicitly named files are kept whatever their extension (they get a per-file error if unreadable);
    inside folders only image extensions are collected. Returns ``(files, problems)`` where problems are
    ``(input, message)`` pairs for inputs that matched nothing or could not be listed. Symlinked folders are
    not followed, so symlink loops cannot trap the walk.
    """
    files: list[str] = []
    problems: list[tuple[str, str]] = []
    for item in inputs:
        if os.path.isdir(item):
            def onerror(e: OSError, _item: str = item) -> None:
                problems.append((e.filename or _item, f"cannot list folder: {e.strerror or e}"))

            for root, dirs, names in os.walk(item, onerror=onerror, followlinks=False):
                dirs.sort()
                if not recursive:
                    dirs.clear()
                files.extend(os.path.join(root, n) for n in sorted(names) if is_image_name(n))
        elif os.path.lexists(item):
            files.append(item)
        elif glob.has_magic(item):
            matched = sorted(glob.glob(item, recursive=True))
            if not matched:
                problems.append((item, "pattern matched no files"))
            for m in matched:
                if os.path.isdir(m):
                    sub, subp = expand_paths([m], recursive)
                    files.extend(sub)
                    problems.extend(subp)
                else:
                    files.append(m)
        else:
            problems.append((item, "no such file or folder"))
    seen: set[str] = set()
    unique = [f for f in files if not (f in seen or seen.add(f))]
    return unique, problems
