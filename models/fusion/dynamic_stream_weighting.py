"""``dynamic-stream-weighting``: a learned per-frame reliability score per stream scales the
streams before a concatenation fusion (AV-RelScore / dynamic stream weighting style).

``r = clip(MLP([a; v (; ctx)]), 0, 1)`` gives ``(r_a, r_v)`` in [0, 1] per frame;
``fused = tanh(W_a (r_a a) + W_v (r_v v) + b)``. AV-RelScore rescales residually (``f r + f``) with a
sigmoid per-channel score from each stream alone (ms-dot-k/AVSR); we scale without the residual
so a score of zero really removes a stream, score from both streams, and use the piecewise-linear
``clip`` instead of a sigmoid so that a score can be exactly 1 (``clamp`` passes the gradient at
the boundaries).

Visual weight (``docs/fusion_weights.md``): contributions ``c_a = W_a (r_a a)``, ``c_v = W_v (r_v v)``
(the shared bias ``b`` belongs to neither), ``w_v = ||c_v|| / (||c_a|| + ||c_v||)``. It reaches 0
(``r_v = 0``) and 1 (``r_a = 0``). The earlier report ``r_v / (r_a + r_v)`` could not exceed 0.5 while
the audio score stayed near 1, and ignored what ``W_a``/``W_v`` do with each stream.

Audio-identity start: ``W_a = I``, ``W_v = 0``, ``b = 0``, and the scorer's output layer weights 0 and
biases 1 (``r_a = r_v = 1`` exactly): ``fused = tanh(a)`` bit for bit, ``w_v = 0``; ``W_v`` receives the
gradient ``delta (r_v v)^T``, which opens the visual path. Without the identity start the score
biases start at 0.75 (both streams mostly on, inside the linear range).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from models.fusion.base import ContextConfig, Fusion, FusionOutput, contribution_weights, identity_
from models.registry import FUSIONS


@dataclass
class DynamicStreamWeightingConfig(ContextConfig):
    """Options of ``dynamic-stream-weighting``: widths, the scorer's temporal context and width."""


@FUSIONS.register("dynamic-stream-weighting")
class DynamicStreamWeightingFusion(Fusion):
    """Per-frame reliability scores of each stream scale it before a linear fusion."""

    name = "dynamic-stream-weighting"
    config_class = DynamicStreamWeightingConfig

    def __init__(self, config: DynamicStreamWeightingConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.scorer = nn.Sequential(nn.Linear(self.score_dim, c.score_hidden), nn.Tanh(), nn.Linear(c.score_hidden, 2))
        with torch.no_grad():
            self.scorer[-1].bias.fill_(0.75)
        self.proj = nn.Linear(c.audio_dim + c.visual_dim, c.out_dim)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
                level: Optional[torch.Tensor] = None) -> FusionOutput:
        da = self.config.audio_dim
        r = torch.clamp(self.scorer(self.score_input(audio, visual, mask)), 0.0, 1.0)
        c_a = F.linear(audio * r[..., :1], self.proj.weight[:, :da])
        c_v = F.linear(visual * r[..., 1:], self.proj.weight[:, da:])
        return FusionOutput(torch.tanh(c_a + c_v + self.proj.bias), contribution_weights(c_a, c_v))

    def extra_macs_per_frame(self) -> int:
        c = self.config  # the two halves of ``proj`` are applied with F.linear (not hooked)
        return (c.audio_dim + c.visual_dim) * c.out_dim

    def init_audio_identity(self) -> bool:
        ok = identity_(self.proj, slice(0, self.config.audio_dim))
        if ok:
            with torch.no_grad():
                self.scorer[-1].weight.zero_()
                self.scorer[-1].bias.fill_(1.0)
        return ok
