"""``modality-attention``: per-frame attention over the two streams (Zhou et al. 2019 style), with
sparsemax in place of softmax.

``h_a = tanh(W_a a)``, ``h_v = tanh(W_v v)``; a small MLP over ``[h_a; h_v (; context)]`` gives two
scores ``(s_a, s_v)`` per frame; ``alpha = sparsemax(s)``, which for two scores is
``alpha_v = clip((1 + s_v - s_a) / 2, 0, 1)``, ``alpha_a = 1 - alpha_v``; ``fused = alpha_a h_a + alpha_v h_v``.
Deviation: the paper uses softmax. A softmax weight is never exactly 0 or 1, so a model cannot
start as the audio-only model (a softmax start of (0.88, 0.12) both let random video in and
scaled the audio by 0.88); sparsemax (Martins & Astudillo 2016) is the softmax variant that can
put exactly zero weight on a stream, and is linear in the scores inside (0, 1). (Whether Zhou
et al. score each stream from itself or from both is unverified; we score from both.)

Visual weight (``docs/fusion_weights.md``): contributions ``c_a = alpha_a h_a``, ``c_v = alpha_v h_v``,
``w_v = ||c_v|| / (||c_a|| + ||c_v||)``: equal to ``alpha_v`` when ``h_a`` and ``h_v`` have equal norms,
0 when ``alpha_v = 0``, 1 when ``alpha_v = 1``.

Audio-identity start: ``W_a = I``, zero bias, the scorer's output layer weights 0 and biases
``(0.5, -0.5)``, so ``s_v - s_a = -1`` and ``alpha_v = clip(0, 0, 1) = 0`` exactly: ``fused = tanh(a)``
bit for bit. ``alpha_v`` sits on the boundary of the linear piece, where ``clamp`` passes the
gradient, so the scores learn to open the video.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from models.fusion.base import ContextConfig, Fusion, FusionOutput, contribution_weights, identity_
from models.registry import FUSIONS


@dataclass
class ModalityAttentionConfig(ContextConfig):
    """Options of ``modality-attention``: widths, the temporal context and the scorer width."""


@FUSIONS.register("modality-attention")
class ModalityAttentionFusion(Fusion):
    """Per-frame (sparsemax) attention over the audio and visual embeddings."""

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

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
                level: Optional[torch.Tensor] = None) -> FusionOutput:
        h_a = torch.tanh(self.proj_a(audio))
        h_v = torch.tanh(self.proj_v(visual))
        s_in = torch.cat([h_a, h_v], dim=-1)
        if self.context is not None:
            s_in = torch.cat([s_in, self.context(torch.cat([audio, visual], -1), mask)], dim=-1)
        s = self.score(s_in)
        alpha_v = torch.clamp((1 + s[..., 1:] - s[..., :1]) / 2, 0.0, 1.0)  # sparsemax of two scores
        c_a, c_v = (1 - alpha_v) * h_a, alpha_v * h_v
        return FusionOutput(c_a + c_v, contribution_weights(c_a, c_v))

    def init_audio_identity(self) -> bool:
        ok = identity_(self.proj_a)
        if ok:
            with torch.no_grad():
                self.score[-1].weight.zero_()
                self.score[-1].bias.copy_(torch.tensor([0.5, -0.5]))
        return ok
