"""One generic name -> object registry used by every family (corpora, noises, corruptions,
models, fusions, algorithms, metrics).

A registry may name the modules that populate it (``modules=``) or the package whose modules
populate it (``package=``: every module of the package, sorted by name, except ``_private`` ones
and ``base``); they are imported on first lookup, so a registry can be declared in a light module
and filled by heavy ones without import cycles, and adding a fusion, algorithm, noise,
corruption, metric or corpus adapter is one new file in that package (``docs/extending.md``).
An optional ``base=`` (a class or a ``runtime_checkable`` protocol, or its dotted path
``"package.module.Class"``, resolved at the first registration so that a light registry module
need not import a heavy base) is checked at :meth:`Registry.register`: anything that is neither
a subclass nor an instance of it is a ``TypeError`` naming the registering module.

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
import pkgutil
import sys
from typing import Any, Callable, Generic, Iterator, Optional, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Register objects by name; unknown names raise a helpful ``KeyError``."""

    def __init__(self, family: str, modules: tuple[str, ...] | list[str] = (), *, package: Optional[str] = None,
                 base: Optional[type | str] = None) -> None:
        self.family = family
        self._modules = tuple(modules)
        self._package = package
        self._base = base
        self._loaded = not self._modules and package is None
        self._loading = False
        self._items: dict[str, T] = {}
        self._docs: dict[str, str] = {}

    def _ensure_loaded(self) -> None:
        if not self._loaded and not self._loading:
            self._loading = True  # the imported modules call register() (and may look up)
            try:
                for mod in self._modules + self.package_modules():
                    importlib.import_module(mod)
                self._loaded = True
            finally:
                self._loading = False

    def package_modules(self) -> tuple[str, ...]:
        """The modules of ``package`` that populate this registry, sorted by name (``_private``
        modules and ``base`` are skipped; ``()`` without a package)."""
        if self._package is None:
            return ()
        pkg = importlib.import_module(self._package)
        names = sorted(m.name for m in pkgutil.iter_modules(getattr(pkg, "__path__", [])))
        return tuple(f"{self._package}.{n}" for n in names if not n.startswith("_") and n != "base")

    def _check_base(self, name: str, o: Any, module: str) -> None:
        if self._base is None:
            return
        if isinstance(self._base, str):
            mod, _, attr = self._base.rpartition(".")
            self._base = getattr(importlib.import_module(mod), attr)
        base = self._base
        try:
            ok = isinstance(o, type) and issubclass(o, base)
        except TypeError:  # a protocol with data members cannot be used with issubclass
            ok = False
        if not ok and not isinstance(o, base):
            what = o.__name__ if isinstance(o, type) else type(o).__name__
            raise TypeError(f"{self.family} {name!r} registered in module {module!r} is {what!r}, "
                            f"not a {base.__name__} (subclass or instance)")

    def register(self, name: str, obj: T | None = None, *, doc: str | None = None) -> Any:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted.

        Raises ``ValueError`` for a name taken by another object and ``TypeError`` when the
        registry has a ``base`` that ``obj`` is neither a subclass nor an instance of."""
        caller = sys._getframe(1).f_globals.get("__name__", "?")

        def _add(o: T) -> T:
            self._check_base(name, o, caller)
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
