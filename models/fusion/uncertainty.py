"""``uncertainty``: precision-weighted fusion (product of Gaussian experts, MVAE-style).

Each stream predicts a mean and a precision per hidden unit from its own features (plus the
shared temporal context when configured): ``mu_m = W_m x_m + b_m``; the audio precision is
``T_a = exp(-clip(U_a [a (; ctx)], -L, L))`` (a clamped log-variance, as in MVAE) and the visual
precision is rectified, ``T_v = clip(U_v [v (; ctx)], 0, e^L)`` (``L`` = ``logvar_clamp``). The fused
mean is ``(T_a mu_a + T_v mu_v) / (T_a + T_v (+ 1))`` (the ``+ 1`` is the N(0, 1) prior expert of Wu
& Goodman 2018, ``prior_expert``) and ``fused = tanh(mean)``. A PoE fusion *inside* a VAE AVSE
model is not a published method (new in this suite).

Deviations, and why: the visual precision is rectified instead of ``exp(-logvar)`` so that the
visual expert can abstain exactly (zero precision = infinite variance), which the exact
audio-identity start needs; the audio precision stays strictly positive, so the PoE's
denominator never vanishes. (A rectified precision pushed below 0 on every frame would stay
closed; in the check of ``docs/fusion_weights.md`` it opened.) (An earlier version layer-normalised the expert means so that only
the precision could silence a stream; with the contribution-share weight below a stream that
shrinks its mean is reported as down-weighted anyway, and the normalisation made the audio
identity impossible, so it was removed.)

Visual weight (``docs/fusion_weights.md``): contributions to the fused mean
``c_a = T_a mu_a / (T_a + T_v (+ 1))``, ``c_v = T_v mu_v / (...)``, ``w_v = ||c_v|| / (||c_a|| + ||c_v||)``
(the precision ratio when the two means have equal norms). It reaches 0 (``T_v = 0``) and, up to
the clamps, 1: at ``T_a = e^-L``, ``T_v = e^L`` it is ``1 / (1 + e^-2L)`` (``1 - 1e-7`` for L = 8).

Audio-identity start (without the prior expert): ``W_a = I``, ``b_a = 0``, ``U_a = 0`` (``T_a = 1``) and
``U_v = 0`` (``T_v = 0`` exactly, on the boundary of the rectifier, where ``clamp`` passes the
gradient ``(mu_v - mean) / (T_a + T_v)`` per unit): ``fused = tanh(a)`` bit for bit. With the prior
expert the fused mean is ``a / 2`` at best, so no identity start is made (returns False).
Without the identity start the visual precision's bias starts at 1 (``T_v ~ T_a ~ 1``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from models.fusion.base import ContextConfig, Fusion, FusionOutput, contribution_weights, identity_, zero_
from models.registry import FUSIONS


@dataclass
class UncertaintyConfig(ContextConfig):
    """Options of ``uncertainty``: widths, the precisions' temporal context, the N(0, 1) prior
    expert, and the log-variance clamp ``L`` (audio log-variance in [-L, L], visual precision
    at most e^L)."""

    prior_expert: bool = False
    logvar_clamp: float = field(default=8.0, metadata={"range": (0.0, 80.0)})


@FUSIONS.register("uncertainty")
class UncertaintyFusion(Fusion):
    """Product of Gaussian experts: fusion by per-unit precision weighting."""

    name = "uncertainty"
    config_class = UncertaintyConfig

    def __init__(self, config: UncertaintyConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.mu_a = nn.Linear(c.audio_dim, c.out_dim)
        self.mu_v = nn.Linear(c.visual_dim, c.out_dim)
        self.lv_a = nn.Linear(c.audio_dim + self.context_dim, c.out_dim)  # audio log-variance
        self.prec_v = nn.Linear(c.visual_dim + self.context_dim, c.out_dim)  # visual precision
        with torch.no_grad():
            self.prec_v.bias.fill_(1.0)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
                level: Optional[torch.Tensor] = None) -> FusionOutput:
        c = self.config
        a_in, v_in = audio, visual
        if self.context is not None:
            ctx = self.context(torch.cat([audio, visual], -1), mask)
            a_in, v_in = torch.cat([audio, ctx], -1), torch.cat([visual, ctx], -1)
        t_a = torch.exp(-self.lv_a(a_in).clamp(-c.logvar_clamp, c.logvar_clamp))
        t_v = self.prec_v(v_in).clamp(0.0, math.exp(c.logvar_clamp))
        total = t_a + t_v + (1.0 if c.prior_expert else 0.0)
        c_a = t_a * self.mu_a(audio) / total
        c_v = t_v * self.mu_v(visual) / total
        return FusionOutput(torch.tanh(c_a + c_v), contribution_weights(c_a, c_v))

    def init_audio_identity(self) -> bool:
        if self.config.prior_expert or not identity_(self.mu_a):
            return False
        zero_(self.lv_a, self.prec_v)
        return True
