"""``constant``: a fixed convex mix of the two streams -- a negative control, not a competitor.

``h_a = tanh(W_a a)``, ``h_v = tanh(W_v v)``, ``h_v' = h_v ||h_a|| / ||h_v||`` (the visual vector
rescaled to the audio vector's norm per frame), ``fused = (1 - c) h_a + c h_v'`` with the constant
``c`` = ``visual_weight`` (default 0.5). The reported weights are ``(1 - c, c)`` on every frame.

Why it exists: a fusion whose weight never reacts to the input must score a reliability AUC of
exactly 0.5 (every frame ties), so it calibrates the reliability diagnostics -- a learned
fusion is only "reliability-aware" if it beats this control -- and it shows what a fixed
audio-visual mix does to enhancement quality. Never report it as a fusion method.

Visual weight (``docs/fusion_weights.md``): with the magnitude matching, the contributions
``c_a = (1 - c) h_a`` and ``c_v = c h_v'`` have norms ``(1 - c) ||h_a||`` and ``c ||h_a||``, so the
shared definition ``||c_v|| / (||c_a|| + ||c_v||)`` equals ``c`` on every frame where ``h_a`` and ``h_v`` are
not zero; the constant is reported exactly (not recomputed, which would add rounding noise and
break the ties).

Audio-identity start: only with ``visual_weight: 0`` (then ``W_a = I``, zero bias, ``fused = tanh(a)``
bit for bit); with any other constant the control cannot start as the audio-only model by
design, and :meth:`init_audio_identity` returns False.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from models.fusion.base import ConvexMixFusion, FusionConfig, FusionOutput, identity_
from models.registry import FUSIONS


@dataclass
class ConstantConfig(FusionConfig):
    """Options of ``constant``: widths and the fixed visual weight ``c``."""

    visual_weight: float = field(default=0.5, metadata={"range": (0.0, 1.0)})


@FUSIONS.register("constant")
class ConstantWeightFusion(ConvexMixFusion):
    """Negative control: fixed convex mix of magnitude-matched streams, constant weight trace."""

    name = "constant"
    config_class = ConstantConfig
    control = "negative control (constant weight)"

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
                level: Optional[torch.Tensor] = None) -> FusionOutput:
        h_a, h_v = self.projections(audio, visual)
        return self.mix(h_a, h_v, torch.full_like(h_a[..., 0], self.config.visual_weight))

    def init_audio_identity(self) -> bool:
        return self.config.visual_weight == 0.0 and identity_(self.proj_a)
