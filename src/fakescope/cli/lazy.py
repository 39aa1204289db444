"""argparse choices read from the registries on first use (building the parser imports no torch)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence


class Lazy(Sequence[str]):
    """argparse ``choices`` listed on first use: building the parser imports neither torch nor scikit-learn.

    Give the argument a ``metavar`` (argparse would otherwise list the choices when the argument is added).
    """

    def __init__(self, names: Callable[[], list[str]]) -> None:
        self._names = names
        self._items: list[str] | None = None

    def _get(self) -> list[str]:
        if self._items is None:
            self._items = list(self._names())
        return self._items

    def __contains__(self, item: object) -> bool:
        return item in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        return self._get()[i]


def model_names() -> list[str]:
    """The built-in architectures, read without importing torch (``models.registry.builtin_architectures``)."""
    from ..models.registry import builtin_architectures

    return list(builtin_architectures())


def attack_names() -> list[str]:
    from ..adversarial import list_attacks

    return list_attacks()


def explainer_names() -> list[str]:
    from ..explain import list_explainers

    return list_explainers()
