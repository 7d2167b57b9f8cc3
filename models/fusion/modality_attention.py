"""``modality-attention``: per-frame softmax attention over the two streams (Zhou et al. 2019 style).

``h_a = tanh(W_a a)``, ``h_v = tanh(W_v v)``; a small MLP over ``[h_a; h_v (; context)]`` gives two
scores per frame; ``alpha = softmax(scores)``; ``fused = alpha_a h_a + alpha_v h_v``. The weights are
``alpha``. (Whether Zhou et al. score each stream from itself or from both is unverified; we
score from both, which can only help detect a mismatch.)
"""
from __future__ import annotations

import torch
from torch import nn

from models.fusion.base import Fusion, FusionOutput, identity_
from models.registry import FUSIONS


@FUSIONS.register("modality-attention")
class ModalityAttentionFusion(Fusion):
    """Per-frame softmax attention over the audio and visual embeddings."""

    name = "modality-attention"

    def __init__(self, config=None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.proj_a = nn.Linear(c.audio_dim, c.out_dim)
        self.proj_v = nn.Linear(c.visual_dim, c.out_dim)
        self.score = nn.Sequential(
            nn.Linear(2 * c.out_dim + self.context_dim, c.score_hidden), nn.Tanh(), nn.Linear(c.score_hidden, 2)
        )

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor) -> FusionOutput:
        h_a = torch.tanh(self.proj_a(audio))
        h_v = torch.tanh(self.proj_v(visual))
        s_in = torch.cat([h_a, h_v], dim=-1)
        if self.context is not None:
            s_in = torch.cat([s_in, self.context(torch.cat([audio, visual], -1), mask)], dim=-1)
        alpha = torch.softmax(self.score(s_in), dim=-1)
        fused = alpha[..., :1] * h_a + alpha[..., 1:] * h_v
        return FusionOutput(fused, alpha, {})

    def init_audio_identity(self) -> bool:
        ok = identity_(self.proj_a)
        if ok:
            with torch.no_grad():
                self.score[-1].bias.copy_(torch.tensor([1.0, -1.0]))
        return ok
