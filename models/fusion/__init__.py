"""The fusion zoo: one module per fusion over :mod:`models.fusion.base`, each registering its
class by name in :data:`models.registry.FUSIONS` (which imports every module of this package on
first lookup, so a new fusion is one new file: ``docs/extending.md``), plus :func:`build_fusion`
and :func:`describe_costs` for ``run_benchmark.py list``. ``constant`` is a negative control
(fixed weight) and ``oracle-reliability`` a positive control (told the true corruption level),
not methods."""
from __future__ import annotations

from models.fusion.base import (Fusion, FusionConfig, FusionOutput, TemporalContext, contribution_weights,
                                count_macs, fusion_config_class)
from models.registry import FUSIONS  # imports every module of this package on first lookup


def build_fusion(name: str, **options) -> Fusion:
    """Build the fusion registered as ``name`` from its own options (strictly validated by its
    ``config_class``)."""
    cls = FUSIONS.get(name)
    return cls(cls.config_class.from_dict(options, source=f"fusion {name!r}"))


def describe_costs(**options) -> dict[str, str]:
    """``{name: "params P, MACs/frame M"}`` for every fusion at the default (or given) widths."""
    out = {}
    for name in FUSIONS.names():
        cost = build_fusion(name, **options).cost_per_frame()
        out[name] = f"{cost['params'] / 1e3:.1f}k params, {cost['macs'] / 1e3:.1f}k MACs/frame"
    return out


__all__ = ["Fusion", "FusionConfig", "FusionOutput", "TemporalContext", "build_fusion", "contribution_weights",
           "count_macs", "describe_costs", "fusion_config_class"]
