"""Registry of enhancement algorithms (EM variants and baselines)."""
from benchmark.registry import Registry

ALGORITHMS: Registry = Registry(
    "algorithm",
    modules=(
        "models.enhancement.mcem",
        "models.enhancement.vem",
        "models.enhancement.peem",
        "models.enhancement.ldem",
        "models.enhancement.baselines",
        "models.enhancement.switching",
    ),
)
