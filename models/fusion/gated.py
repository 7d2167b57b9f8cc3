"""``gated``: the Gated Multimodal Unit (Arevalo et al. 2017) with a piecewise-linear gate.

``h_a = tanh(W_a a)``, ``h_v = tanh(W_v v)``, ``z = clip(W_z [a; v (; context)] + b_z, 0, 1)`` (one gate
per hidden unit), ``fused = (1 - z) * h_a + z * h_v``. Deviation: the GMU's gate is a sigmoid; ours
is its piecewise-linear form (``clip`` to [0, 1]), because a sigmoid cannot be exactly 0, and a
gate that starts "almost closed" lets a random visual path in (the earlier start, a gate bias of
-1, opened every gate to sigmoid(-1) = 0.27). ``clip``'s gradient is passed at the boundaries (PyTorch's
``clamp`` backward is inclusive), so a gate sitting at exactly 0 still learns. That is not a
guarantee (a gate pushed below 0 on every frame stays closed; it happened to a clipped version
of ``modality-attention``, ``docs/fusion_weights.md``); this one opened in the check there.

Visual weight (``docs/fusion_weights.md``): contributions ``c_a = (1 - z) h_a``, ``c_v = z h_v`` (their
sum is ``fused``), ``w_v = ||c_v|| / (||c_a|| + ||c_v||)``: 0 when the gate is closed on every unit,
1 when it is open on every unit, and the mean gate when ``h_a`` and ``h_v`` have equal norms.
(The paper defines no per-frame modality weight.)

Audio-identity start: ``W_a = I``, zero ``b_a``, and ``W_z = 0``, ``b_z = 0`` exactly, so ``z = 0``,
``fused = tanh(a)`` bit for bit and ``w_v = 0``. The gate's gradient there is
``delta * (h_v - h_a)`` times its input: after one step the gate pre-activation varies with the
frame, so it opens where the video helps (a constant bias alone could close every unit for good).
Without that start (training from scratch) the gate bias starts at 0.5 (the sigmoid's 0.5 at 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from models.fusion.base import ContextConfig, Fusion, FusionOutput, contribution_weights, identity_, zero_
from models.registry import FUSIONS


@dataclass
class GatedConfig(ContextConfig):
    """Options of ``gated``: widths and the temporal context of the gate (``score_hidden`` is the
    context width)."""


@FUSIONS.register("gated")
class GatedFusion(Fusion):
    """Gated multimodal unit: a per-unit gate in [0, 1] mixes tanh projections of the two streams."""

    name = "gated"
    config_class = GatedConfig

    def __init__(self, config: GatedConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.proj_a = nn.Linear(c.audio_dim, c.out_dim)
        self.proj_v = nn.Linear(c.visual_dim, c.out_dim)
        self.gate = nn.Linear(self.score_dim, c.out_dim)
        with torch.no_grad():
            self.gate.bias.fill_(0.5)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
                level: Optional[torch.Tensor] = None) -> FusionOutput:
        h_a = torch.tanh(self.proj_a(audio))
        h_v = torch.tanh(self.proj_v(visual))
        z = torch.clamp(self.gate(self.score_input(audio, visual, mask)), 0.0, 1.0)
        c_a, c_v = (1 - z) * h_a, z * h_v
        return FusionOutput(c_a + c_v, contribution_weights(c_a, c_v))

    def init_audio_identity(self) -> bool:
        ok = identity_(self.proj_a)
        if ok:
            zero_(self.gate)
        return ok
