"""``cross-attention``: windowed multi-head cross-modal attention (MulT-style audio queries over
visual keys/values) with a residual and a zero-initialised sigmoid gate on the visual contribution.

Each audio frame ``t`` attends over the visual frames ``t - w .. t + w`` only (``window`` = w), so
the cost is linear in the utterance length (``O(T (2w+1) d)``), never quadratic. A learned
relative-position bias per head and offset replaces positional encodings. Padded visual frames
are excluded from every window (the frame itself is always a valid key for a real frame).

``c_t = W_o attn(W_q a_t, W_k v, W_v v)``; ``g_t = sigmoid(W_g [a_t; c_t])`` with ``W_g`` and its bias
initialised to zero (so ``g = 0.5`` at the start, as in the gated attention of Ayilo et al.);
``fused = tanh(W_a a_t + g_t * c_t)``. Weights: ``(1 - mean g, mean g)``; the head-averaged
attention maps ``[B, T, 2w+1]`` (offset -w..w) are in ``extras["attention"]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.fusion.base import Fusion, FusionOutput, identity_
from models.registry import FUSIONS


@FUSIONS.register("cross-attention")
class CrossAttentionFusion(Fusion):
    """Windowed multi-head cross-modal attention (audio queries, visual keys/values) with a gate."""

    name = "cross-attention"

    def __init__(self, config=None, **kwargs) -> None:
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

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor) -> FusionOutput:
        c = self.config
        B, T, _ = audio.shape
        q = self.q(audio).view(B, T, c.heads, c.head_dim)
        k = self._windows(self.k(visual).view(B, T, c.heads, c.head_dim))  # [B, T, W, h, d]
        v = self._windows(self.v(visual).view(B, T, c.heads, c.head_dim))
        kmask = self._windows(mask.to(audio.dtype)).bool()  # [B, T, W]
        scores = torch.einsum("bthd,btwhd->bthw", q, k) / c.head_dim ** 0.5 + self.rel_bias
        scores = scores.masked_fill(~kmask.unsqueeze(2), float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        attn = torch.nan_to_num(attn, nan=0.0)  # padding query rows with no valid key
        ctx = torch.einsum("bthw,btwhd->bthd", attn, v).reshape(B, T, -1)
        cvis = self.o(ctx)
        g_in = torch.cat([audio, cvis], -1)
        if self.context is not None:
            g_in = torch.cat([g_in, self.context(torch.cat([audio, visual], -1), mask)], -1)
        g = torch.sigmoid(self.gate(g_in))
        fused = torch.tanh(self.proj_a(audio) + g * cvis)
        gv = g.mean(-1)
        return FusionOutput(fused, torch.stack([1 - gv, gv], -1), {"attention": attn.mean(2)})

    def forward_samples(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor) -> FusionOutput:
        """Latent samples ``[N, B, T, Da]`` against shared video: keys/values and their windows
        are computed once and broadcast over the N samples (same result as :meth:`forward`)."""
        if self.context is not None:
            return super().forward_samples(audio, visual, mask)
        c = self.config
        N, B, T, _ = audio.shape
        q = self.q(audio).view(N, B, T, c.heads, c.head_dim)
        k = self._windows(self.k(visual).view(B, T, c.heads, c.head_dim))
        v = self._windows(self.v(visual).view(B, T, c.heads, c.head_dim))
        kmask = self._windows(mask.to(audio.dtype)).bool()
        scores = torch.einsum("nbthd,btwhd->nbthw", q, k) / c.head_dim ** 0.5 + self.rel_bias
        scores = scores.masked_fill(~kmask.unsqueeze(2), float("-inf"))
        attn = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
        cvis = self.o(torch.einsum("nbthw,btwhd->nbthd", attn, v).reshape(N, B, T, -1))
        g = torch.sigmoid(self.gate(torch.cat([audio, cvis], -1)))
        fused = torch.tanh(self.proj_a(audio) + g * cvis)
        gv = g.mean(-1)
        return FusionOutput(fused, torch.stack([1 - gv, gv], -1), {})

    def extra_macs_per_frame(self) -> int:
        c = self.config
        return 2 * c.heads * c.head_dim * (2 * c.window + 1)

    def init_audio_identity(self) -> bool:
        ok = identity_(self.proj_a)
        if ok:
            with torch.no_grad():
                self.gate.bias.fill_(-2.0)
        return ok
