"""Progress: a bar with live metrics (rich on a terminal, a few plain lines otherwise) and the one line printer."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
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
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            # on stderr, and stdout left alone (rich would otherwise route it through its stderr console)
            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=True,
                                     console=Console(stderr=True), redirect_stdout=False)
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


@contextmanager
def counter(description: str, disable: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback for work whose total is known only once it starts: the first call opens
    a ``Progress`` bar (none when that call is already ``done == total``), later calls move it; it closes with
    the block."""
    with ExitStack() as stack:
        bar: list[Progress] = []

        def tick(done: int, total: int) -> None:
            if not bar:
                if done >= total:
                    return
                bar.append(stack.enter_context(Progress(total, description, disable=disable)))
            if done > bar[0].n:
                bar[0].update(done - bar[0].n)

        yield tick
