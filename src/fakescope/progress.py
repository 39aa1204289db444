"""Progress: a bar with live metrics (rich on a terminal, a few plain lines otherwise) and the one line printer."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any


def printer(quiet: bool = False, prefix: str = "") -> Callable[..., None]:
    """The one progress printer: ``say(*parts)`` writes a line to stderr (``prefix`` first), or nothing if ``quiet``."""
    if quiet:
        return lambda *parts: None
    head = (prefix,) if prefix else ()

    def say(*parts: object) -> None:
        print(*head, *parts, file=sys.stderr, flush=True)

    return say


class Progress:
    def __init__(self, total: int, description: str, disable: bool = False) -> None:
        self.total, self.description, self.disable = total, description, disable
        self.n, self._last, self._bar, self._task = 0, 0.0, None, None

    def __enter__(self) -> Progress:
        if not self.disable and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, info="")
        return self

    def update(self, advance: int = 1, **metrics: Any) -> None:
        self.n += advance
        if self.disable:
            return
        info = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
        if self._bar is not None:
            self._bar.update(self._task, advance=advance, info=info)
        elif time.monotonic() - self._last > 30 or self.n == self.total:
            self._last = time.monotonic()
            print(f"{self.description}: {self.n}/{self.total} {info}", file=sys.stderr, flush=True)

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
