"""Shared pieces of the fusion zoo: the output type, the config, the base class, temporal
context modules, masking helpers and the per-frame cost counter.

Interface of every fusion (registered in :data:`models.registry.FUSIONS`)::

    fusion(audio [B, T, Da], visual [B, T, Dv], mask [B, T] bool) -> FusionOutput
        fused    [B, T, D]  hidden activations (already passed through the fusion's nonlinearity)
        weights  [B, T, 2]  per-frame modality weights, column 0 = audio, 1 = visual, or None
        extras   dict       anything else worth plotting (attention maps, precisions, scores)

Inside the VAEs the *audio* input is the pre-activation audio projection (``Lin_x(x)`` in the
encoder, ``Lin_z(z)`` in the decoder) and the *visual* input is the front-end embedding, so that
``concat`` reproduces the published additive fusion ``tanh(Lin_x x + Lin_v v)`` exactly (the sum of
two linear maps is one linear map on the concatenation).

Padding frames (``mask == False``) never influence real frames: per-frame modules are trivially
invariant, and every temporal operation (convolution, GRU, windowed attention) zeroes or excludes
padded positions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Optional

import torch
from torch import nn

TEMPORAL_KINDS = ("none", "conv", "gru")


@dataclass
class FusionOutput:
    """What every fusion returns (see the module docstring)."""

    fused: torch.Tensor
    weights: Optional[torch.Tensor]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class FusionConfig:
    """Settings shared by all fusions (a fusion ignores what it does not use)."""

    audio_dim: int = 128
    visual_dim: int = 128
    out_dim: int = 128
    #: temporal context for the weight computations: "none", "conv" (non-causal, kernel
    #: ``temporal_kernel``) or "gru" (unidirectional, so end padding cannot leak backwards)
    temporal: str = "none"
    temporal_kernel: int = 5
    #: hidden width of score/gate MLPs
    score_hidden: int = 32
    #: cross-attention: heads, head width, half window (frames each side; 0 = the frame itself)
    heads: int = 4
    head_dim: int = 16
    window: int = 8
    #: uncertainty: include the N(0, 1) "prior expert" of MVAE in the product
    prior_expert: bool = False
    logvar_clamp: float = 8.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FusionConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown fusion option(s) {unknown}; known: {sorted(known)}")
        cfg = cls(**d)
        if cfg.temporal not in TEMPORAL_KINDS:
            raise ValueError(f"fusion temporal must be one of {TEMPORAL_KINDS}, got {cfg.temporal!r}")
        return cfg


def masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero ``x [..., T, D]`` on padding frames (``mask [..., T]`` False)."""
    return x * mask.unsqueeze(-1).to(x.dtype)


def _flatten_lead(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    lead = x.shape[:-2]
    return x.reshape(-1, x.shape[-2], x.shape[-1]), tuple(lead)


class TemporalContext(nn.Module):
    """Mask-safe temporal context over frames: a 1-D convolution (non-causal, zero-padded) or a
    unidirectional GRU. Input ``[..., T, Din]`` -> output ``[..., T, Dout]``; padding rows are zero."""

    def __init__(self, kind: str, in_dim: int, out_dim: int, kernel: int = 5) -> None:
        super().__init__()
        if kind not in ("conv", "gru"):
            raise ValueError(f"temporal context kind must be 'conv' or 'gru', got {kind!r}")
        self.kind = kind
        if kind == "conv":
            if kernel % 2 != 1:
                raise ValueError(f"temporal_kernel must be odd, got {kernel}")
            self.net = nn.Conv1d(in_dim, out_dim, kernel, padding=kernel // 2)
        else:
            self.net = nn.GRU(in_dim, out_dim, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = masked(x, mask)
        flat, lead = _flatten_lead(x)
        m = mask.expand(x.shape[:-1]).reshape(-1, x.shape[-2])
        if self.kind == "conv":
            y = self.net(flat.transpose(1, 2)).transpose(1, 2)
        else:
            y, _ = self.net(flat)
        y = masked(y, m)
        return y.reshape(*lead, y.shape[-2], y.shape[-1])


class Fusion(nn.Module):
    """Base class: holds the config, the optional temporal context and the cost report."""

    #: registry name (set by subclasses)
    name: str = "base"
    #: whether :attr:`FusionOutput.weights` is provided
    has_weights: bool = True
    #: whether the fusion uses the temporal context (``config.temporal``) at all
    uses_context: bool = True

    def __init__(self, config: FusionConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = FusionConfig.from_dict(kwargs)
        elif kwargs:
            raise TypeError("pass either a FusionConfig or keyword options, not both")
        self.config = config
        c = config
        self.context: Optional[TemporalContext] = None
        self.context_dim = 0
        if c.temporal != "none" and self.uses_context:
            self.context_dim = c.score_hidden
            self.context = TemporalContext(c.temporal, c.audio_dim + c.visual_dim, self.context_dim, c.temporal_kernel)

    # -- helpers ---------------------------------------------------------------------------
    def score_input(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[audio; visual]`` plus the temporal context when configured (input of gates/scores)."""
        av = torch.cat([audio, visual], dim=-1)
        if self.context is None:
            return av
        return torch.cat([av, self.context(av, mask)], dim=-1)

    @property
    def score_dim(self) -> int:
        return self.config.audio_dim + self.config.visual_dim + self.context_dim

    def forward_samples(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor) -> FusionOutput:
        """``audio [N, B, T, Da]`` (N latent samples) with ``visual [B, T, Dv]`` and ``mask [B, T]``
        shared by all samples -> fused ``[N, B, T, D]``, weights ``[N, B, T, 2]``. Default: run
        :meth:`forward` on the flattened ``[N * B, T, .]``; fusions may override it to compute
        the visual side once."""
        N, B, T, _ = audio.shape
        out = self(audio.reshape(N * B, T, -1), visual.expand(N, *visual.shape).reshape(N * B, T, -1),
                   mask.expand(N, *mask.shape).reshape(N * B, T))
        w = None if out.weights is None else out.weights.reshape(N, B, T, 2)
        return FusionOutput(out.fused.reshape(N, B, T, -1), w, {})

    def init_audio_identity(self) -> bool:
        """Make the fusion pass the audio stream through unchanged at initialisation (when the
        architecture allows it) so an AV model initialised from an A-VAE starts as that A-VAE.
        Returns whether it was done."""
        return False

    def extra_macs_per_frame(self) -> int:
        """MACs per frame not made by Linear/Conv/GRU layers (e.g. attention products)."""
        return 0

    # -- cost report -----------------------------------------------------------------------
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def cost_per_frame(self, n_frames: int = 64) -> dict[str, int]:
        """``{"params": ..., "macs": ...}``: parameter count and multiply-adds per frame, measured
        by hooks on a forward pass of ``n_frames`` frames (Linear, Conv1d, GRU) plus
        :meth:`extra_macs_per_frame`. Elementwise operations are not counted."""
        c = self.config
        macs = count_macs(
            self, lambda: self(torch.zeros(1, n_frames, c.audio_dim), torch.zeros(1, n_frames, c.visual_dim),
                               torch.ones(1, n_frames, dtype=torch.bool))
        )
        return {"params": self.n_params(), "macs": int(round(macs / n_frames)) + self.extra_macs_per_frame()}


def count_macs(module: nn.Module, run) -> float:
    """Multiply-adds of the Linear / Conv1d / Conv2d / Conv3d / GRU layers of ``module`` during
    ``run()`` (a no-grad forward), counted by forward hooks."""
    total = [0.0]

    def hook(m: nn.Module, inp: tuple, out: Any) -> None:
        x = inp[0]
        if isinstance(m, nn.Linear):
            total[0] += x.numel() / m.in_features * m.in_features * m.out_features
        elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            k = math.prod(m.kernel_size) * (m.in_channels // m.groups)
            total[0] += out.numel() * k
        elif isinstance(m, nn.GRU):
            steps = x.shape[0] * x.shape[1]
            h = m.hidden_size
            total[0] += steps * 3 * (m.input_size * h + h * h) * (2 if m.bidirectional else 1)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.GRU))]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return total[0]


def identity_(linear: nn.Linear, cols: slice | None = None, others_scale: float = 0.1) -> bool:
    """Set the input columns ``cols`` of ``linear`` to the identity and zero its bias; the other
    columns keep their random initialisation scaled by ``others_scale`` (so the other stream still
    receives gradient). Returns False (and changes nothing) when the widths do not match."""
    cols = cols or slice(0, linear.in_features)
    width = cols.stop - cols.start
    if width != linear.out_features:
        return False
    with torch.no_grad():
        linear.weight.mul_(others_scale)
        linear.weight[:, cols] = torch.eye(width)
        if linear.bias is not None:
            linear.bias.zero_()
    return True
