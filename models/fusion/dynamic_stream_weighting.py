"""``dynamic-stream-weighting``: a learned per-frame reliability score per stream scales the
streams before a concatenation fusion (AV-RelScore / dynamic stream weighting style).

``r = sigmoid(MLP([a; v (; ctx)]))`` gives ``(r_a, r_v)`` in (0, 1) per frame;
``fused = tanh(W_a (r_a a) + W_v (r_v v) + b)``. AV-RelScore rescales residually (``f r + f``) with a
per-channel score from each stream alone (ms-dot-k/AVSR); we scale without the residual so a
score near zero really removes a stream, and score from both streams. Reported weights:
``(r_a, r_v) / (r_a + r_v)``; the raw scores are in ``extras["scores"]``.
"""
from __future__ import annotations

import torch
from torch import nn

from models.fusion.base import Fusion, FusionOutput, identity_
from models.registry import FUSIONS


@FUSIONS.register("dynamic-stream-weighting")
class DynamicStreamWeightingFusion(Fusion):
    """Per-frame reliability scores of each stream scale it before a linear fusion."""

    name = "dynamic-stream-weighting"

    def __init__(self, config=None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.scorer = nn.Sequential(nn.Linear(self.score_dim, c.score_hidden), nn.Tanh(), nn.Linear(c.score_hidden, 2))
        with torch.no_grad():
            self.scorer[-1].bias.fill_(2.0)  # start with both streams mostly on
        self.proj = nn.Linear(c.audio_dim + c.visual_dim, c.out_dim)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor) -> FusionOutput:
        r = torch.sigmoid(self.scorer(self.score_input(audio, visual, mask)))
        x = torch.cat([audio * r[..., :1], visual * r[..., 1:]], dim=-1)
        fused = torch.tanh(self.proj(x))
        w = r / r.sum(-1, keepdim=True)
        return FusionOutput(fused, w, {"scores": r})

    def init_audio_identity(self) -> bool:
        ok = identity_(self.proj, slice(0, self.config.audio_dim))
        if ok:  # audio score ~1 so the audio path is the identity up to sigmoid(6)
            with torch.no_grad():
                self.scorer[-1].bias.copy_(torch.tensor([6.0, 0.0]))
        return ok
