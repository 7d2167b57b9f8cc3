"""One generic name -> object registry used by every family (corpora, noises, corruptions,
models, fusions, algorithms, metrics).

A registry may name the modules that populate it; they are imported on first lookup, so a
registry can be declared in a light module and filled by heavy ones without import cycles.

>>> r = Registry("colour")
>>> @r.register("red")
... def make_red():
...     return "#f00"
>>> r.get("red")()
'#f00'
>>> r.get("blue")
Traceback (most recent call last):
...
KeyError: "unknown colour 'blue'; known: red"
"""
from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Register objects by name; unknown names raise a helpful ``KeyError``."""

    def __init__(self, family: str, modules: tuple[str, ...] | list[str] = ()) -> None:
        self.family = family
        self._modules = tuple(modules)
        self._loaded = not self._modules
        self._loading = False
        self._items: dict[str, T] = {}
        self._docs: dict[str, str] = {}

    def _ensure_loaded(self) -> None:
        if not self._loaded and not self._loading:
            self._loading = True  # the imported modules call register() (and may look up)
            try:
                for mod in self._modules:
                    importlib.import_module(mod)
                self._loaded = True
            finally:
                self._loading = False

    def register(self, name: str, obj: T | None = None, *, doc: str | None = None) -> Any:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def _add(o: T) -> T:
            if name in self._items and self._items[name] is not o:
                raise ValueError(f"duplicate {self.family} name {name!r}")
            self._items[name] = o
            text = doc if doc is not None else (getattr(o, "__doc__", None) or "")
            self._docs[name] = text.strip().splitlines()[0] if text.strip() else ""
            return o

        if obj is not None:
            return _add(obj)
        return _add

    def get(self, name: str) -> T:
        """Return the object registered as ``name``."""
        self._ensure_loaded()
        try:
            return self._items[name]
        except KeyError:
            known = sorted(self._items)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise KeyError(
                f"unknown {self.family} {name!r}{hint}; known: {', '.join(known) or '(none)'}"
            ) from None

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._items)

    def doc(self, name: str) -> str:
        self._ensure_loaded()
        return self._docs.get(name, "")

    def items(self) -> Iterator[tuple[str, T]]:
        self._ensure_loaded()
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._items

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._items)


def factory(registry: Registry[Callable[..., T]], name: str, **kwargs: Any) -> T:
    """Build the object registered as ``name`` with ``kwargs``."""
    return registry.get(name)(**kwargs)
