"""``cross-attention``: windowed multi-head cross-modal attention (MulT-style audio queries over
visual keys/values) with a residual and a sigmoid gate on the visual contribution.

Each audio frame ``t`` attends over the visual frames ``t - w .. t + w`` only (``window`` = w), so
the cost is linear in the utterance length (``O(T (2w+1) d)``), never quadratic. A learned
relative-position bias per head and offset replaces positional encodings. Padded visual frames
are excluded from every window (the frame itself is always a valid key for a real frame).

``c_t = W_o attn(W_q a_t, W_k v, W_v v) + b_o``; ``g_t = sigmoid(W_g [a_t; c_t (; context)])`` with
``W_g`` and its bias initialised to zero (``g = 0.5`` at the start, as in the gated attention of
Ayilo et al.); ``fused = tanh(W_a a_t + b_a + g_t * c_t)``.

Visual weight (``docs/fusion_weights.md``): contributions ``c_a = W_a a_t + b_a`` (the residual audio
path) and ``c_v = g_t * c_t`` (the gated attention output), ``w_v = ||c_v|| / (||c_a|| + ||c_v||)``.
The gate alone is not a share (it never scales the audio path), so it is not reported.

Audio-identity start: ``W_a = I``, ``b_a = 0`` and the attention output projection ``W_o``, ``b_o``
set to exactly zero (the zero-initialised output of ReZero / Flamingo-style gated
cross-attention): ``c_t = 0``, ``fused = tanh(a)`` bit for bit, ``w_v = 0``. The gate stays at 0.5, so
``W_o`` receives the gradient ``0.5 delta attn(...)^T`` and training opens the visual path (the
query/key/value maps learn once ``W_o`` is non-zero).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from models.fusion.base import ContextConfig, Fusion, FusionOutput, contribution_weights, identity_, zero_
from models.registry import FUSIONS


@dataclass
class CrossAttentionConfig(ContextConfig):
    """Options of ``cross-attention``: widths, the gate's temporal context, and the attention
    heads, head width and half window (frames each side; 0 = the frame itself)."""

    heads: int = field(default=4, metadata={"range": (1, None)})
    head_dim: int = field(default=16, metadata={"range": (1, None)})
    window: int = field(default=8, metadata={"range": (0, None)})


@FUSIONS.register("cross-attention")
class CrossAttentionFusion(Fusion):
    """Windowed multi-head cross-modal attention (audio queries, visual keys/values) with a gate."""

    name = "cross-attention"
    config_class = CrossAttentionConfig

    def __init__(self, config: CrossAttentionConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        inner = c.heads * c.head_dim
        self.q = nn.Linear(c.audio_dim, inner, bias=False)
        self.k = nn.Linear(c.visual_dim, inner, bias=False)
        self.v = nn.Linear(c.visual_dim, inner, bias=False)
        self.o = nn.Linear(inner, c.out_dim)
        self.proj_a = nn.Linear(c.audio_dim, c.out_dim)
        self.rel_bias = nn.Parameter(torch.zeros(c.heads, 2 * c.window + 1))
        self.gate = nn.Linear(c.audio_dim + c.out_dim + self.context_dim, c.out_dim)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, ...]`` -> ``[B, T, 2w+1, ...]`` (zero-padded at both ends)."""
        w = self.config.window
        B, T = x.shape[:2]
        rest = x.shape[2:]
        flat = x.reshape(B, T, -1).transpose(1, 2)  # [B, C, T]
        flat = F.pad(flat, (w, w))
        win = flat.unfold(2, 2 * w + 1, 1)  # [B, C, T, 2w+1]
        return win.permute(0, 2, 3, 1).reshape(B, T, 2 * w + 1, *rest)

    def _keys_values(self, visual: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Windowed keys and values ``[B, T, 2w+1, h, d]`` and the key mask ``[B, T, 2w+1]``."""
        c = self.config
        B, T, _ = visual.shape
        k = self._windows(self.k(visual).view(B, T, c.heads, c.head_dim))
        v = self._windows(self.v(visual).view(B, T, c.heads, c.head_dim))
        kmask = self._windows(mask.to(visual.dtype)).bool()
        return k, v, kmask

    def _fuse(self, audio: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kmask: torch.Tensor,
              ctx: Optional[torch.Tensor], lead: str = "") -> FusionOutput:
        """Attention of the queries ``q [(N,) B, T, h, d]`` over the windows, gate and residual
        (``lead`` = "n" when the queries have a leading sample dimension)."""
        c = self.config
        scores = torch.einsum(f"{lead}bthd,btwhd->{lead}bthw", q, k) / c.head_dim ** 0.5 + self.rel_bias
        scores = scores.masked_fill(~kmask.unsqueeze(-2), float("-inf"))
        attn = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)  # padding rows with no valid key
        cvis = self.o(torch.einsum(f"{lead}bthw,btwhd->{lead}bthd", attn, v).flatten(-2))
        g_in = torch.cat([audio, cvis], -1)
        if ctx is not None:
            g_in = torch.cat([g_in, ctx], -1)
        c_v = torch.sigmoid(self.gate(g_in)) * cvis
        c_a = self.proj_a(audio)
        return FusionOutput(torch.tanh(c_a + c_v), contribution_weights(c_a, c_v))

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
                level: Optional[torch.Tensor] = None) -> FusionOutput:
        c = self.config
        B, T, _ = audio.shape
        k, v, kmask = self._keys_values(visual, mask)
        ctx = None if self.context is None else self.context(torch.cat([audio, visual], -1), mask)
        q = self.q(audio).view(B, T, c.heads, c.head_dim)
        return self._fuse(audio, q, k, v, kmask, ctx)

    def forward_samples(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
                        level: Optional[torch.Tensor] = None) -> FusionOutput:
        """Latent samples ``[N, B, T, Da]`` against shared video: keys/values and their windows
        are computed once and broadcast over the N samples (same result as :meth:`forward`)."""
        if self.context is not None:
            return super().forward_samples(audio, visual, mask, level)
        c = self.config
        N, B, T, _ = audio.shape
        k, v, kmask = self._keys_values(visual, mask)
        q = self.q(audio).view(N, B, T, c.heads, c.head_dim)
        return self._fuse(audio, q, k, v, kmask, None, lead="n")

    def extra_macs_per_frame(self) -> int:
        c = self.config
        return 2 * c.heads * c.head_dim * (2 * c.window + 1)

    def init_audio_identity(self) -> bool:
        ok = identity_(self.proj_a)
        if ok:
            zero_(self.o)
        return ok
