"""The fusion zoo: one module per fusion over :mod:`models.fusion.base`, each registering its
class by name in :data:`models.registry.FUSIONS` (which imports every module of this package on
first lookup, so a new fusion is one new file: ``docs/extending.md``), plus
:func:`describe_costs` for ``run_benchmark.py list``."""
from __future__ import annotations

from models.fusion.base import Fusion, FusionConfig, FusionOutput, TemporalContext, count_macs
from models.registry import FUSIONS


def build_fusion(name: str, **options) -> Fusion:
    """Build the fusion registered as ``name`` with :class:`FusionConfig` options."""
    return FUSIONS.get(name)(FusionConfig.from_dict(options))


def describe_costs(**options) -> dict[str, str]:
    """``{name: "params P, MACs/frame M"}`` for every fusion at the default (or given) widths."""
    out = {}
    for name in FUSIONS.names():
        cost = build_fusion(name, **options).cost_per_frame()
        out[name] = f"{cost['params'] / 1e3:.1f}k params, {cost['macs'] / 1e3:.1f}k MACs/frame"
    return out


__all__ = ["Fusion", "FusionConfig", "FusionOutput", "TemporalContext", "count_macs", "build_fusion",
           "describe_costs"]
