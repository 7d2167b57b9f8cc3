"""``oracle-reliability``: a POSITIVE CONTROL of the reliability diagnostics, never a competitor.

It is told the ground truth: its visual weight on each frame is ``w = w_max (1 - level)``, where
``level [B, T]`` is the true corruption level of the video frame shown there (0 = clean, 1 =
fully corrupted; the ``level`` keyword of :meth:`Fusion.forward`, which the enhancement takes
from the mixture's ``corruption.npy`` and the training from the visual augmentation). A real
system never knows this. Its purpose is to show that the diagnostics detect a fusion that does
track reliability: its visual-weight AUC (clean vs corrupted frames) must read ~1, as a
constant-weight fusion must read 0.5 and a model without weights "no weights". Every table
labels it by its name (``av-vae/oracle-reliability``) and the reliability table marks it in its
``control`` column (class attribute :attr:`OracleReliabilityFusion.control`).

Mechanism: ``h_a = tanh(W_a a)`` and ``h_v = tanh(W_v v)``; the visual vector is rescaled to the
audio vector's norm, ``u_v = h_v ||h_a|| / ||h_v||``, and the fused vector is the convex mix

    fused = (1 - w) h_a + w u_v,   c_a = (1 - w) h_a,   c_v = w u_v.

The rescaling makes the reported weight exactly the visual-weight definition of
``docs/fusion_weights.md``: ``||c_v|| / (||c_a|| + ||c_v||) = w`` (except on a frame where
``h_v`` is exactly zero, where ``c_v = 0``). Clean frames (level 0) get the weight ``w_max``
(``max_visual_weight``, default 0.5: the ``constant`` control's mix), fully corrupted ones weight
0 (the fused vector is ``h_a``; with the audio-identity start, exactly the A-VAE's hidden layer).
So on clean video the oracle *is* the ``constant`` control, and the two differ only where the
video is corrupted: their difference is what perfect per-frame reliability weighting buys.

Why ``w_max`` < 1: with ``w = 1`` on clean frames (this control's first version) the fused vector
of the encoder and the decoder holds no audio at all on clean video; trained so, the first study
run's oracle reached a validation IS of 3.5 per bin (the other systems 0.85-0.94) and lost 9.5 dB
SI-SDR in enhancement -- a control that fails as a speech model says nothing about weighting.
``max_visual_weight: 1.0`` restores it.

``level=None`` (a caller that gives no ground truth, e.g. the cost counter) is taken as clean
video (level 0). Enhancement with this fusion requires the levels (the enhancement API refuses
an input without them, since the model's ``uses_level`` is true).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from models.fusion.base import ConvexMixFusion, FusionConfig, FusionOutput, identity_
from models.registry import FUSIONS


@dataclass
class OracleReliabilityConfig(FusionConfig):
    """Options of ``oracle-reliability``: the widths and the weight on clean frames ``w_max``."""

    max_visual_weight: float = field(default=0.5, metadata={"range": (0.0, 1.0)})


def oracle_visual_weight(level: Optional[torch.Tensor], like: torch.Tensor, max_weight: float = 1.0) -> torch.Tensor:
    """``max_weight * (1 - level)``, ``1 - level`` clipped to [0, 1], shaped and typed like
    ``like [..., T]`` (``max_weight`` everywhere when ``level`` is None: clean video)."""
    if level is None:
        return torch.full_like(like, max_weight)
    return max_weight * (1.0 - level.to(device=like.device, dtype=like.dtype)).clamp(0.0, 1.0).expand_as(like)


@FUSIONS.register("oracle-reliability")
class OracleReliabilityFusion(ConvexMixFusion):
    """Positive control: convex mix of audio and (norm-matched) visual vectors with the true
    per-frame weight ``w_max (1 - level)`` (an oracle; see the module docstring)."""

    name = "oracle-reliability"
    config_class = OracleReliabilityConfig
    #: reads the ground-truth ``level`` (models with such a fusion set ``uses_level``)
    uses_level = True
    #: shown in the reliability table's ``control`` column
    control = "positive control (oracle)"

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
                level: Optional[torch.Tensor] = None) -> FusionOutput:
        h_a, h_v = self.projections(audio, visual)
        return self.mix(h_a, h_v, oracle_visual_weight(level, h_a[..., 0], self.config.max_visual_weight))  # w [B, T]

    def init_audio_identity(self) -> bool:
        """``W_a = I``, zero bias: on fully corrupted frames the output is the A-VAE's hidden layer."""
        return identity_(self.proj_a)
