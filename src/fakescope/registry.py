"""One registry pattern for models, attacks and detectors: a decorator plus ``create``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → factory mapping. ``@REG.register("name")`` adds a factory, ``REG.create(name, **kw)`` calls it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._docs: dict[str, str] = {}
        self._tags: dict[str, frozenset[str]] = {}

    def register(self, name: str, doc: str | None = None,
                 tags: tuple[str, ...] = ()) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator adding ``fn`` as ``name``; ``tags`` mark limits (e.g. ``binary-only`` models)."""
        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = fn
            self._docs[name] = doc or (fn.__doc__ or "").strip().split("\n")[0]
            self._tags[name] = frozenset(tags)
            return fn

        return deco

    def create(self, name: str, **kwargs: Any) -> T:
        """Call the factory of ``name``; ``None`` keyword arguments are dropped, so the factory's defaults apply."""
        if name not in self._factories:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self._factories[name](**{k: v for k, v in kwargs.items() if v is not None})

    def names(self, without_tag: str | None = None) -> list[str]:
        """Registered names, sorted; ``without_tag`` leaves out those carrying that tag."""
        return sorted(n for n in self._factories if without_tag is None or without_tag not in self._tags[n])

    def has_tag(self, name: str, tag: str) -> bool:
        return tag in self._tags.get(name, frozenset())

    def describe(self, name: str) -> str:
        return self._docs.get(name, "")

    def __contains__(self, name: object) -> bool:
        return name in self._factories
