"""Registry of enhancement algorithms (EM variants and baselines)."""
from importlib.util import find_spec

from benchmark.registry import Registry

_MODULES = (
    "models.enhancement.mcem",
    "models.enhancement.vem",
    "models.enhancement.peem",
    "models.enhancement.ldem",
    "models.enhancement.baselines",
    "models.enhancement.switching",  # composite models (issue 10); optional until it lands
)

ALGORITHMS: Registry = Registry(
    "algorithm",
    modules=tuple(m for m in _MODULES if m != "models.enhancement.switching" or find_spec(m) is not None),
)
