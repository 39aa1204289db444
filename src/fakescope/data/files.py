"""Finding image files: files, folders (recursive) and globs; CIFAKE file-name parsing."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from .images import IMAGE_EXTS, UNSUPPORTED_EXTS

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


# why a file inside a folder is not scanned (``skip_reason``); ``fakescope scan`` counts them by reason
NOT_IMAGE, NO_EXTENSION, UNSUPPORTED, HIDDEN = "not an image", "no extension", "format not supported", "hidden file"


def skip_reason(name: str) -> str | None:
    """``None`` for a file name a folder scan decodes, else why it is left out (one of the reasons above)."""
    ext = os.path.splitext(name)[1].lower()
    if ext in IMAGE_EXTS:
        return None
    if name.startswith("."):
        return HIDDEN
    if not ext:
        return NO_EXTENSION
    return UNSUPPORTED if ext in UNSUPPORTED_EXTS else NOT_IMAGE


def expand_paths(inputs: list[str], recursive: bool = True,
                 skipped: list[tuple[str, str]] | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of files.

    Explicitly named files are kept whatever their extension (they get a per-file error if unreadable);
    inside folders only image extensions are collected, and each other file is appended to ``skipped`` (when
    given) as ``(path, reason)`` (``skip_reason``). Returns ``(files, problems)`` where problems are
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
                for n in sorted(names):
                    why = skip_reason(n)
                    if why is None:
                        files.append(os.path.join(root, n))
                    elif skipped is not None:
                        skipped.append((os.path.join(root, n), why))
        elif os.path.lexists(item):
            files.append(item)
        elif glob.has_magic(item):
            matched = sorted(glob.glob(item, recursive=True))
            if not matched:
                problems.append((item, "pattern matched no files"))
            for m in matched:
                if os.path.isdir(m):
                    sub, subp = expand_paths([m], recursive, skipped)
                    files.extend(sub)
                    problems.extend(subp)
                else:
                    files.append(m)
        else:
            problems.append((item, "no such file or folder"))
    seen: set[str] = set()
    unique = [f for f in files if not (f in seen or seen.add(f))]
    return unique, problems
