"""``modality-attention``: per-frame softmax attention over the two streams (Zhou et al. 2019
style) with a zero-initialisable opening.

``h_a = tanh(W_a a)``, ``h_v = tanh(W_v v)``; a small MLP over ``[h_a; h_v (; context)]`` gives two
scores per frame; ``alpha = softmax(scores)``; ``fused = (1 - rho alpha_v) h_a + rho alpha_v h_v``
with a learned scalar opening ``rho``. With ``rho = 1`` (its value when trained from scratch) this
is ``alpha_a h_a + alpha_v h_v``, the published form; ``rho`` lets the model start exactly as the
audio-only model (``rho = 0``) and is not bounded (``rho alpha_v`` outside [0, 1] extrapolates).
(Whether Zhou et al. score each stream from itself or from both is unverified; we score from both.)

Why the opening: a softmax weight is never exactly 0 (the earlier start, scores (1, -1), gave
the video 0.12 and scaled the audio by 0.88), and a sparsemax weight placed at exactly 0 was
closed for good by the first steps (the video features are random at the start, so mixing
them in can only hurt, and below 0 the clipped weight has no gradient): measured, a visual
weight of exactly 0 after 6 epochs of AV-VAE training. ``rho`` has no kink: its gradient
``sum_t alpha_v delta (h_v - h_a)`` moves it off 0 in either direction.

Visual weight (``docs/fusion_weights.md``): contributions ``c_a = (1 - rho alpha_v) h_a``,
``c_v = rho alpha_v h_v``, ``w_v = ||c_v|| / (||c_a|| + ||c_v||)``: ``alpha_v`` when ``rho = 1`` and ``h_a``,
``h_v`` have equal norms, 0 when ``rho alpha_v = 0``, 1 when ``rho alpha_v = 1``.

Audio-identity start: ``W_a = I``, zero bias and ``rho = 0`` exactly: ``fused = tanh(a)`` bit for bit,
``w_v = 0``; the scorer and ``W_v`` keep their random initialisation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from models.fusion.base import ContextConfig, Fusion, FusionOutput, contribution_weights, identity_
from models.registry import FUSIONS
from models.registry import FUSIONS


@dataclass
class ModalityAttentionConfig(ContextConfig):
    """Options of ``modality-attention``: widths, the temporal context and the scorer width."""


@FUSIONS.register("modality-attention")
@FUSIONS.register("modality-attention")
class ModalityAttentionFusion(Fusion):
    """Per-frame softmax attention (times a learned opening) over the audio and visual embeddings."""

    name = "modality-attention"
    config_class = ModalityAttentionConfig

    def __init__(self, config: ModalityAttentionConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.proj_a = nn.Linear(c.audio_dim, c.out_dim)
        self.proj_v = nn.Linear(c.visual_dim, c.out_dim)
        self.score = nn.Sequential(
            nn.Linear(2 * c.out_dim + self.context_dim, c.score_hidden), nn.Tanh(), nn.Linear(c.score_hidden, 2)
        )
        self.rho = nn.Parameter(torch.ones(()))

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
                level: Optional[torch.Tensor] = None) -> FusionOutput:
        h_a = torch.tanh(self.proj_a(audio))
        h_v = torch.tanh(self.proj_v(visual))
        s_in = torch.cat([h_a, h_v], dim=-1)
        if self.context is not None:
            s_in = torch.cat([s_in, self.context(torch.cat([audio, visual], -1), mask)], dim=-1)
        alpha_v = self.rho * torch.softmax(self.score(s_in), dim=-1)[..., 1:]
        c_a, c_v = (1 - alpha_v) * h_a, alpha_v * h_v
        return FusionOutput(c_a + c_v, contribution_weights(c_a, c_v))

    def init_audio_identity(self) -> bool:
        ok = identity_(self.proj_a)
        if ok:
            with torch.no_grad():
                self.rho.zero_()
        return ok
