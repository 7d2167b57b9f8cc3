"""The fusion zoo: one module per fusion over :mod:`models.fusion.base`, registered by name in
:data:`models.registry.FUSIONS`, plus :func:`describe_costs` for ``run_benchmark.py list``."""
from __future__ import annotations

from models.fusion.base import Fusion, FusionConfig, FusionOutput, TemporalContext, count_macs
from models.fusion.concat import ConcatFusion
from models.fusion.cross_attention import CrossAttentionFusion
from models.fusion.dynamic_stream_weighting import DynamicStreamWeightingFusion
from models.fusion.gated import GatedFusion
from models.fusion.modality_attention import ModalityAttentionFusion
from models.fusion.uncertainty import UncertaintyFusion
from models.registry import FUSIONS

for _cls in (ConcatFusion, GatedFusion, ModalityAttentionFusion, CrossAttentionFusion, UncertaintyFusion,
             DynamicStreamWeightingFusion):
    FUSIONS.register(_cls.name, _cls)


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
