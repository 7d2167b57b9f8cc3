"""``gated``: the Gated Multimodal Unit (Arevalo et al. 2017).

``h_a = tanh(W_a a)``, ``h_v = tanh(W_v v)``, ``z = sigmoid(W_z [a; v (; context)])`` (one gate per
hidden unit), ``fused = (1 - z) * h_a + z * h_v``. Reported weights per frame:
``(1 - mean_k z_k, mean_k z_k)`` (averaging over units is our convention; the paper defines none).
"""
from __future__ import annotations

import torch
from torch import nn

from models.fusion.base import Fusion, FusionOutput, identity_
from models.registry import FUSIONS


@FUSIONS.register("gated")
class GatedFusion(Fusion):
    """Gated multimodal unit: a sigmoid gate mixes tanh projections of the two streams."""

    name = "gated"

    def __init__(self, config=None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.proj_a = nn.Linear(c.audio_dim, c.out_dim)
        self.proj_v = nn.Linear(c.visual_dim, c.out_dim)
        self.gate = nn.Linear(self.score_dim, c.out_dim)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor) -> FusionOutput:
        h_a = torch.tanh(self.proj_a(audio))
        h_v = torch.tanh(self.proj_v(visual))
        z = torch.sigmoid(self.gate(self.score_input(audio, visual, mask)))
        fused = h_a + z * (h_v - h_a)
        zv = z.mean(-1)
        return FusionOutput(fused, torch.stack([1 - zv, zv], dim=-1), {"gate": z})

    def init_audio_identity(self) -> bool:
        ok = identity_(self.proj_a)
        if ok:  # start with the gate mostly closed on the visual stream
            with torch.no_grad():
                self.gate.bias.fill_(-1.0)
        return ok
