"""``concat``: concatenation then one linear layer and tanh (the published AV-VAE baseline).

``fused = tanh(W [a; v] + b)``. With ``a`` the pre-activation audio projection this equals the
additive form ``tanh(Lin_x x + Lin_v v)`` of Sadeghi et al. (avse-vae ``AV_VAE.py``). No weights.
"""
from __future__ import annotations

import torch
from torch import nn

from models.fusion.base import Fusion, FusionOutput, identity_
from models.registry import FUSIONS


@FUSIONS.register("concat")
class ConcatFusion(Fusion):
    """Concatenation + linear + tanh (published baseline); no modality weights."""

    name = "concat"
    has_weights = False
    uses_context = False  # a pure per-frame linear map (temporal options are ignored)

    def __init__(self, config=None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.proj = nn.Linear(c.audio_dim + c.visual_dim, c.out_dim)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor) -> FusionOutput:
        return FusionOutput(torch.tanh(self.proj(torch.cat([audio, visual], dim=-1))), None, {})

    def init_audio_identity(self) -> bool:
        return identity_(self.proj, slice(0, self.config.audio_dim))
