"""The contract of a registered noise: a :class:`NoiseFactory` builds a noise source and declares
the options it accepts.

:data:`noise_sets.NOISES` is declared with ``base=NoiseFactory``: registering anything else (a
plain function, a class) is a ``TypeError`` naming the registering module.

A factory declares its options as a config dataclass (``options_cls``: field types, and
``range``/``choices`` in the field metadata, as in :mod:`benchmark.configtools`; cross-field
rules in its ``__post_init__`` raise :class:`~benchmark.configtools.FieldError`) plus the
options its registered name fixes (``fixed``, e.g. ``environment=DKITCHEN`` of
``demand-DKITCHEN``; those keys are not accepted). The same check runs twice:

* at load time, :func:`benchmark.spec.check_spec` calls :meth:`NoiseFactory.check` on
  ``conditions.noise_options.<noise>`` of every noise of the preset (an error names the preset
  file and the full key, with a did-you-mean), which also runs :meth:`NoiseFactory.check_data`
  (the loaders of :mod:`noise_sets.loaders`: the root folder exists and has the expected layout);
* when the source is made (``factory(corpus_root=None, **options)``), the factory checks the
  options itself; an error there is a :class:`NoiseOptionError` (both a :class:`NoiseError` and a
  :class:`~benchmark.configtools.ConfigError`).

Deliberately light (only :mod:`benchmark.configtools` is imported), so that the registry can
resolve its base while :mod:`noise_sets.builtin` registers.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

from benchmark.configtools import ConfigError, did_you_mean, from_dict

if TYPE_CHECKING:
    from noise_sets.builtin import NoiseSource


class NoiseError(ValueError):
    """A noise source cannot produce what was asked (names the source and the problem)."""


class NoiseOptionError(NoiseError, ConfigError):
    """An option of a noise factory is unknown, of the wrong type or out of range."""


class NoiseFactory(ABC):
    """A registered noise: ``factory(corpus_root=None, **options) -> NoiseSource``.

    Subclasses set ``options_cls`` (a config dataclass of every option, fixed ones included),
    ``fixed`` (the options this name sets; not accepted from the user) and implement
    :meth:`build`; :meth:`check_data` is a no-op unless the noise reads data of its own."""

    name: str
    options_cls: type
    fixed: Mapping[str, Any]

    def __init__(self, name: str, options_cls: type, fixed: Optional[Mapping[str, Any]] = None,
                 doc: str = "") -> None:
        if not dataclasses.is_dataclass(options_cls):
            raise TypeError(f"noise {name!r}: options_cls must be a dataclass, got {options_cls!r}")
        self.name = name
        self.options_cls = options_cls
        self.fixed = dict(fixed or {})
        self.__doc__ = doc  # the registry's one-line description

    def accepted(self) -> list[str]:
        """The option keys a user may set (``conditions.noise_options.<name>``), sorted."""
        return sorted(f.name for f in dataclasses.fields(self.options_cls) if f.init and f.name not in self.fixed)

    def options(self, options: Mapping[str, Any], *, source: str = "", prefix: str = "") -> Any:
        """``options`` (plus the fixed ones) as an ``options_cls`` instance; an unknown key (with a
        did-you-mean), a wrong type, an out-of-range value or a broken rule of the class is a
        :class:`NoiseOptionError` naming ``source`` and the key under ``prefix`` (by default
        ``noise '<name>'`` and ``conditions.noise_options.<name>``)."""
        source = source or f"noise {self.name!r}"
        prefix = prefix or f"conditions.noise_options.{self.name}"
        if not isinstance(options, Mapping):
            raise NoiseOptionError(f"{source}: key '{prefix}': expected a mapping of options, "
                                   f"got {type(options).__name__} {options!r}")
        accepted = self.accepted()
        unknown = sorted((k for k in options if k not in accepted), key=str)
        if unknown:
            k = unknown[0]
            raise NoiseOptionError(f"{source}: unknown key '{prefix}.{k}'{did_you_mean(k, accepted)} (unknown "
                                   f"option of noise {self.name!r}; accepted: {', '.join(accepted) or '(none)'})")
        try:
            return from_dict(self.options_cls, {**self.fixed, **options}, source=source, prefix=prefix)
        except NoiseOptionError:
            raise
        except ConfigError as exc:
            raise NoiseOptionError(str(exc)) from None

    def check_data(self, opts: Any) -> None:
        """Check the data on disk that ``opts`` names (cheap: no audio is read); raise
        :class:`NoiseError` or :class:`benchmark.audio_io.DataError`. Default: nothing to check."""

    def check(self, options: Mapping[str, Any], *, source: str = "", prefix: str = "") -> Any:
        """Load-time check: :meth:`options`, then :meth:`check_data`; every problem is a
        :class:`~benchmark.configtools.ConfigError` naming ``source`` and the key. Returns the
        options instance."""
        source = source or f"noise {self.name!r}"
        prefix = prefix or f"conditions.noise_options.{self.name}"
        opts = self.options(options, source=source, prefix=prefix)
        try:
            self.check_data(opts)
        except (OSError, ValueError) as exc:  # NoiseError, DataError (ValueErrors), an unreadable folder
            key = f"{prefix}.root" if any(f.name == "root" for f in dataclasses.fields(opts)) else prefix
            raise ConfigError(f"{source}: key '{key}': {exc}") from None
        return opts

    @abstractmethod
    def build(self, corpus_root: Optional[Path], opts: Any) -> "NoiseSource":
        """The noise source for checked options ``opts`` (an ``options_cls`` instance)."""

    def __call__(self, corpus_root: Path | str | None = None, **options: Any) -> "NoiseSource":
        """Check ``options`` (:meth:`options`) and build the source."""
        opts = self.options(options)
        return self.build(None if corpus_root is None else Path(corpus_root), opts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, options={self.accepted()})"


def source_options_class(cls: type, exclude: tuple[str, ...] = ("name", "corpus_root")) -> type:
    """A config dataclass of the init fields of noise-source dataclass ``cls`` (same types,
    defaults and ``range``/``choices`` metadata), less ``exclude`` and ``_private`` fields: the
    options of a generated noise are the fields of its source class."""
    import typing

    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_") or f.name in exclude:
            continue
        kw: dict[str, Any] = {"metadata": f.metadata}
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kw["default_factory"] = f.default_factory
        specs.append((f.name, hints[f.name], dataclasses.field(**kw)))
    options_cls = dataclasses.make_dataclass(f"{cls.__name__}Options", specs)
    options_cls.__module__ = cls.__module__
    return options_cls


class SourceFactory(NoiseFactory):
    """The factory of a noise-source dataclass: its options are the source's own fields
    (:func:`source_options_class`); ``fixed`` may also set non-option fields (e.g. ``name``).
    Sources with a ``corpus_root`` field get the factory's ``corpus_root``."""

    def __init__(self, name: str, cls: type, fixed: Optional[Mapping[str, Any]] = None, doc: str = "") -> None:
        options_cls = source_options_class(cls)
        option_names = {f.name for f in dataclasses.fields(options_cls)}
        fixed = dict(fixed or {})
        self.cls = cls
        self.constants = {k: v for k, v in fixed.items() if k not in option_names}
        self.takes_corpus = any(f.name == "corpus_root" for f in dataclasses.fields(cls))
        super().__init__(name, options_cls, {k: v for k, v in fixed.items() if k in option_names},
                         doc or " ".join((cls.__doc__ or name).replace("``", "").split()))

    def build(self, corpus_root: Optional[Path], opts: Any) -> "NoiseSource":
        kw = {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)}
        if self.takes_corpus:
            kw["corpus_root"] = corpus_root
        return self.cls(**self.constants, **kw)
