"""``concat``: concatenation then one linear layer and tanh (the published AV-VAE baseline).

``fused = tanh(W [a; v] + b) = tanh(W_a a + W_v v + b)``. With ``a`` the pre-activation audio
projection this equals the additive form ``tanh(Lin_x x + Lin_v v)`` of Sadeghi et al. (avse-vae
``AV_VAE.py``).

Visual weight (``docs/fusion_weights.md``): ``c_a = W_a a``, ``c_v = W_v v`` (the shared bias ``b``
belongs to neither stream), ``w_v = ||c_v|| / (||c_a|| + ||c_v||)``. Concatenation has no weighting
mechanism of its own; this is how much the video moves each frame's pre-activation.

Audio-identity start: ``W_a = I``, ``W_v = 0``, ``b = 0`` exactly, so ``fused = tanh(a)`` bit for bit
and ``w_v = 0``. The zero visual columns get the gradient ``dL/dW_v = delta v^T`` (non-zero whenever
the loss depends on the hidden layer), so training opens the visual path. (Published: the AV-CVAE
starts from the A-VAE with its visual layers at random; zero visual columns are our choice so
that the start is exactly the A-VAE.)
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from models.fusion.base import Fusion, FusionConfig, FusionOutput, contribution_weights, identity_
from models.registry import FUSIONS


@FUSIONS.register("concat")
class ConcatFusion(Fusion):
    """Concatenation + linear + tanh (published baseline); visual weight = the video's share of
    the pre-activation."""

    name = "concat"
    config_class = FusionConfig  # a pure per-frame linear map: widths only

    def __init__(self, config: FusionConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.proj = nn.Linear(c.audio_dim + c.visual_dim, c.out_dim)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
                level: Optional[torch.Tensor] = None) -> FusionOutput:
        da = self.config.audio_dim
        c_a = F.linear(audio, self.proj.weight[:, :da])
        c_v = F.linear(visual, self.proj.weight[:, da:])
        return FusionOutput(torch.tanh(c_a + c_v + self.proj.bias), contribution_weights(c_a, c_v))

    def extra_macs_per_frame(self) -> int:
        c = self.config  # the two halves of ``proj`` are applied with F.linear (not hooked)
        return (c.audio_dim + c.visual_dim) * c.out_dim

    def init_audio_identity(self) -> bool:
        return identity_(self.proj, slice(0, self.config.audio_dim))
