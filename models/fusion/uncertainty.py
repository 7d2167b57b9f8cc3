"""``uncertainty``: precision-weighted fusion (product of Gaussian experts, MVAE-style).

Each stream predicts a mean and a log-variance per hidden unit from its own features (plus the
shared temporal context when configured): ``mu_m = LN(W_m x_m)``, ``logvar_m = U_m [x_m (; ctx)]``.
The means are layer-normalised without affine parameters, so an expert cannot silence itself by
shrinking its mean: a stream can only be down-weighted through its precision, which makes the
precision the reliability signal (our design choice).
With precisions ``T_m = exp(-logvar_m)`` the fused mean is ``sum_m T_m mu_m / sum_m T_m`` (optionally
with the N(0, 1) prior expert of Wu & Goodman 2018), and ``fused = tanh(mean)``. Weights per frame:
the normalised precisions of the two streams averaged over units. A PoE fusion *inside* a VAE
AVSE model is not a published method (new in this suite).
"""
from __future__ import annotations

import torch
from torch import nn

from models.fusion.base import Fusion, FusionOutput, identity_
from models.registry import FUSIONS


@FUSIONS.register("uncertainty")
class UncertaintyFusion(Fusion):
    """Product of Gaussian experts: fusion by per-unit precision weighting."""

    name = "uncertainty"

    def __init__(self, config=None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.mu_a = nn.Linear(c.audio_dim, c.out_dim)
        self.mu_v = nn.Linear(c.visual_dim, c.out_dim)
        self.lv_a = nn.Linear(c.audio_dim + self.context_dim, c.out_dim)
        self.lv_v = nn.Linear(c.visual_dim + self.context_dim, c.out_dim)
        self.norm = nn.LayerNorm(c.out_dim, elementwise_affine=False)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor) -> FusionOutput:
        c = self.config
        a_in, v_in = audio, visual
        if self.context is not None:
            ctx = self.context(torch.cat([audio, visual], -1), mask)
            a_in, v_in = torch.cat([audio, ctx], -1), torch.cat([visual, ctx], -1)
        lv_a = self.lv_a(a_in).clamp(-c.logvar_clamp, c.logvar_clamp)
        lv_v = self.lv_v(v_in).clamp(-c.logvar_clamp, c.logvar_clamp)
        t_a, t_v = torch.exp(-lv_a), torch.exp(-lv_v)
        total = t_a + t_v + (1.0 if c.prior_expert else 0.0)
        mean = (t_a * self.norm(self.mu_a(audio)) + t_v * self.norm(self.mu_v(visual))) / total
        wv = (t_v / (t_a + t_v)).mean(-1)
        extras = {"logvar": -torch.log(total), "precision_audio": t_a.mean(-1), "precision_visual": t_v.mean(-1)}
        return FusionOutput(torch.tanh(mean), torch.stack([1 - wv, wv], dim=-1), extras)

    def init_audio_identity(self) -> bool:
        """Not an exact identity (the expert means are layer-normalised): start with the identity
        audio projection and trust in the audio expert (precision ratio e^4 : 1); returns False."""
        identity_(self.mu_a)
        with torch.no_grad():
            self.lv_a.bias.fill_(-2.0)
            self.lv_v.bias.fill_(2.0)
        return False
