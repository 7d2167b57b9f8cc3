"""Registry of enhancement algorithms (EM variants and baselines).

Every module of :mod:`models.enhancement` is imported on the first lookup, so a new algorithm is
one new file there that registers its class (``docs/extending.md``). A registered algorithm is a
class with a ``name``, a ``config_cls`` (a dataclass of its settings) and a constructor taking
that config: an :class:`~models.enhancement.em.EMAlgorithm` (run by ``run_em``) or a
:class:`~models.enhancement.baselines.Baseline` (``run(items, ...)``).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from benchmark.registry import Registry


@runtime_checkable
class Algorithm(Protocol):
    """What :func:`models.enhancement.api.make_algorithm` needs of a registered class."""

    name: str
    config_cls: type


ALGORITHMS: Registry = Registry("algorithm", package="models.enhancement", base=Algorithm)
