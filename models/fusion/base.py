"""Shared pieces of the fusion zoo: the output type, the per-fusion configs, the base class,
temporal context modules, masking helpers, the visual-weight definition and the cost counter.

Interface of every fusion (registered in :data:`models.registry.FUSIONS`)::

    fusion(audio [B, T, Da], visual [B, T, Dv], mask [B, T] bool, level=None) -> FusionOutput
        fused    [B, T, D]  hidden activations (already passed through the fusion's nonlinearity)
        weights  [B, T, 2]  per-frame modality weights, column 0 = audio, 1 = visual (definition below)

``level`` (optional ``[B, T]``, at the fused frame rate) is the ground-truth visual corruption
level per frame (0 = clean, 1 = fully corrupted). Only an oracle fusion may read it; every real
fusion accepts and ignores it, so one call site serves both.

Inside the VAEs the *audio* input is the pre-activation audio projection (``Lin_x(x)`` in the
encoder, ``Lin_z(z)`` in the decoder) and the *visual* input is the front-end embedding, so that
``concat`` reproduces the published additive fusion ``tanh(Lin_x x + Lin_v v)`` exactly (the sum of
two linear maps is one linear map on the concatenation).

**Visual weight** (one definition for every fusion, ``docs/fusion_weights.md``): each fusion's
fused pre-activation (or, for the fusions that mix already-activated streams, the fused vector
itself) is written as ``bias + c_a + c_v``, the audio stream's and the visual stream's
contributions, per frame; then ``w_v = ||c_v|| / (||c_a|| + ||c_v||)`` (Euclidean norms over the
units) and ``w_a = 1 - w_v``; ``w_v = 0`` when both contributions are zero. ``w_v`` lies in [0, 1],
reaches 0 exactly when the visual path contributes nothing and 1 when the audio path contributes
nothing, and equals a convex mixing weight whenever the two mixed vectors have equal norms. It is
computed with its graph (a training loss may use it).

**Audio-identity start**: :meth:`Fusion.init_audio_identity` makes the fusion output exactly the
A-VAE's hidden layer ``tanh(audio)`` (bit for bit) with a visual contribution of exactly zero,
in such a way that the loss gradient can open the visual path (each module's docstring says how).

Per-fusion configs: each fusion class names its ``config_class``, a dataclass with the shared
widths (:class:`FusionConfig`) plus only the options it uses; :func:`fusion_config_class` finds
it by registry name, and ``config_class.from_dict`` rejects unknown keys (with a did-you-mean),
wrong types and out-of-range values, naming the key.

Padding frames (``mask == False``) never influence real frames: per-frame modules are trivially
invariant, and every temporal operation (convolution, GRU, windowed attention) zeroes or excludes
padded positions.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional, TypeVar

import torch
from torch import nn

from benchmark.configtools import FieldError, check_fields, from_dict as config_from_dict

log = logging.getLogger(__name__)

TEMPORAL_KINDS = ("none", "conv", "gru")

#: option names of the single shared fusion config used before the per-fusion configs; a saved
#: model config may carry one its fusion does not use (see :meth:`Fusion.from_options`)
LEGACY_OPTIONS = frozenset({"audio_dim", "visual_dim", "out_dim", "temporal", "temporal_kernel", "score_hidden",
                            "heads", "head_dim", "window", "prior_expert", "logvar_clamp"})

C = TypeVar("C", bound="FusionConfig")


@dataclass
class FusionOutput:
    """What every fusion returns (see the module docstring): ``fused [B, T, D]`` and
    ``weights [B, T, 2]`` (column 1 = visual weight)."""

    fused: torch.Tensor
    weights: torch.Tensor


@dataclass
class FusionConfig:
    """The widths every fusion has (each fusion's config class extends this)."""

    audio_dim: int = field(default=128, metadata={"range": (1, None)})
    visual_dim: int = field(default=128, metadata={"range": (1, None)})
    out_dim: int = field(default=128, metadata={"range": (1, None)})

    def __post_init__(self) -> None:
        check_fields(self)

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any], *, source: Optional[str] = None) -> C:
        """Build from plain options; an unknown key (with a did-you-mean), a wrong type or an
        out-of-range value is a ``ValueError`` (:class:`benchmark.configtools.ConfigError`)
        naming the key."""
        return config_from_dict(cls, dict(d), source=source or f"fusion options ({cls.__name__})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ContextConfig(FusionConfig):
    """Widths plus the optional temporal context of a fusion's weight computation."""

    #: temporal context for the weight computations: "none", "conv" (non-causal, kernel
    #: ``temporal_kernel``) or "gru" (unidirectional, so end padding cannot leak backwards)
    temporal: str = field(default="none", metadata={"choices": TEMPORAL_KINDS})
    temporal_kernel: int = field(default=5, metadata={"range": (1, None)})
    #: width of the temporal context and hidden width of score/gate MLPs
    score_hidden: int = field(default=32, metadata={"range": (1, None)})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temporal_kernel % 2 != 1:
            raise FieldError(type(self).__name__, "temporal_kernel", f"must be odd, got {self.temporal_kernel}")


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
    #: the dataclass of this fusion's options (set by subclasses)
    config_class: type[FusionConfig] = FusionConfig
    #: a control of the diagnostics, not a fusion method (e.g. "negative control (constant
    #: weight)"); None for real fusions. Controls are exempt from the audio-identity start.
    control: Optional[str] = None
    #: True for an oracle that reads the ground-truth ``level`` (every real fusion ignores it)
    uses_level: bool = False

    def __init__(self, config: FusionConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = self.config_class.from_dict(kwargs, source=f"fusion {self.name!r}")
        elif kwargs:
            raise TypeError("pass either a config or keyword options, not both")
        elif not isinstance(config, self.config_class):
            raise TypeError(f"fusion {self.name!r} takes a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        c = config
        self.context: Optional[TemporalContext] = None
        self.context_dim = 0
        if isinstance(c, ContextConfig) and c.temporal != "none":
            self.context_dim = c.score_hidden
            self.context = TemporalContext(c.temporal, c.audio_dim + c.visual_dim, self.context_dim, c.temporal_kernel)

    @classmethod
    def from_options(cls, options: dict[str, Any], *, inherited: Optional[dict[str, Any]] = None) -> "Fusion":
        """Build from a model's option dict. ``inherited`` holds defaults passed to every fusion
        (e.g. the model's ``temporal``); those this fusion's config does not have are dropped.
        Options of the former shared config (:data:`LEGACY_OPTIONS`) that this fusion does not
        use are dropped with a warning, so configs saved in checkpoints before the per-fusion
        configs still load; any other unknown option is an error (``ValueError``)."""
        own = {f.name for f in fields(cls.config_class)}
        opts = {k: v for k, v in (inherited or {}).items() if k in own}
        unused = sorted(k for k in options if k not in own and k in LEGACY_OPTIONS)
        if unused:
            log.warning("fusion %r: ignoring option(s) %s it does not use (accepted for older configs)", cls.name, unused)
        opts.update({k: v for k, v in options.items() if k not in unused})
        return cls(cls.config_class.from_dict(opts, source=f"fusion {cls.name!r}"))

    # -- helpers ---------------------------------------------------------------------------
    def score_input(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[audio; visual]`` plus the temporal context when configured (input of gates/scores)."""
        av = torch.cat([audio, visual], dim=-1)
        if self.context is None:
            return av
        return torch.cat([av, self.context(av, mask)], dim=-1)

    @property
    def couples_frames(self) -> bool:
        """Whether the fused output of a frame depends on the audio input of other frames (the
        temporal context of the weight computations; attention windows over the *visual* stream
        do not count: the video is fixed during the EM). Checked for every registered fusion by
        ``tests/test_frame_local_decoder.py``."""
        return self.context is not None

    @property
    def score_dim(self) -> int:
        return self.config.audio_dim + self.config.visual_dim + self.context_dim

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
                level: Optional[torch.Tensor] = None) -> FusionOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_samples(self, audio: torch.Tensor, visual: torch.Tensor, mask: torch.Tensor,
                        level: Optional[torch.Tensor] = None) -> FusionOutput:
        """``audio [N, B, T, Da]`` (N latent samples) with ``visual [B, T, Dv]``, ``mask [B, T]``
        and ``level [B, T]`` shared by all samples -> fused ``[N, B, T, D]``, weights
        ``[N, B, T, 2]``. Default: run :meth:`forward` on the flattened ``[N * B, T, .]``; fusions
        may override it to compute the visual side once."""
        N, B, T, _ = audio.shape
        lev = None if level is None else level.expand(N, *level.shape).reshape(N * B, T)
        out = self(audio.reshape(N * B, T, -1), visual.expand(N, *visual.shape).reshape(N * B, T, -1),
                   mask.expand(N, *mask.shape).reshape(N * B, T), level=lev)
        return FusionOutput(out.fused.reshape(N, B, T, -1), out.weights.reshape(N, B, T, 2))

    def init_audio_identity(self) -> bool:
        """Make the fusion output exactly ``tanh(audio)`` with a zero visual contribution (so an AV
        model initialised from an A-VAE starts as that A-VAE, bit for bit) while the gradient can
        still open the visual path. Returns whether it was done."""
        return False

    def extra_macs_per_frame(self) -> int:
        """MACs per frame not made by Linear/Conv/GRU modules (e.g. attention products)."""
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


def fusion_config_class(name: str) -> type[FusionConfig]:
    """The config dataclass of the fusion registered as ``name`` (``KeyError`` with the known
    names when there is none); ``fusion_config_class(name).from_dict(options)`` validates a
    preset's fusion options."""
    from models.registry import FUSIONS

    return FUSIONS.get(name).config_class


def contribution_weights(audio_part: torch.Tensor, visual_part: torch.Tensor) -> torch.Tensor:
    """The visual-weight definition of the module docstring: contributions ``[..., D]`` of each
    stream to the fused vector -> ``[..., 2]`` = ``(1 - w_v, w_v)`` with
    ``w_v = ||c_v|| / (||c_a|| + ||c_v||)`` (0 when both are zero)."""
    na = torch.linalg.vector_norm(audio_part, dim=-1)
    nv = torch.linalg.vector_norm(visual_part, dim=-1)
    wv = nv / (na + nv).clamp_min(torch.finfo(nv.dtype).tiny)
    return torch.stack([1 - wv, wv], dim=-1)


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


def match_norm(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``x [..., D]`` rescaled per row to the Euclidean norm of ``ref [..., D]`` (a zero row of ``x``
    stays zero)."""
    nx = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    return x * (torch.linalg.vector_norm(ref, dim=-1, keepdim=True) / nx)


class ConvexMixFusion(Fusion):
    """Base of the control fusions: ``h_a = tanh(W_a a)``, ``h_v = tanh(W_v v)``, and the convex mix
    ``fused = (1 - w) h_a + w h_v'`` of the audio vector and the visual vector rescaled to its norm
    (:func:`match_norm`), so that the shared visual-weight definition of ``docs/fusion_weights.md``
    equals ``w`` exactly. Subclasses choose ``w`` per frame (a constant, the ground truth, ...)."""

    def __init__(self, config: FusionConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        self.proj_a = nn.Linear(c.audio_dim, c.out_dim)
        self.proj_v = nn.Linear(c.visual_dim, c.out_dim)

    def projections(self, audio: torch.Tensor, visual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h_a, h_v)``, each ``[..., T, out_dim]``."""
        return torch.tanh(self.proj_a(audio)), torch.tanh(self.proj_v(visual))

    @staticmethod
    def mix(h_a: torch.Tensor, h_v: torch.Tensor, w: torch.Tensor) -> FusionOutput:
        """The convex mix with per-frame visual weight ``w [..., T]``; weights ``[..., T, 2]``."""
        wk = w.unsqueeze(-1)
        return FusionOutput((1 - wk) * h_a + wk * match_norm(h_v, h_a), torch.stack([1 - w, w], dim=-1))


def identity_(linear: nn.Linear, cols: slice | None = None) -> bool:
    """Set the input columns ``cols`` of ``linear`` to the identity and every other column and the
    bias to exactly zero, so ``linear([a; v]) == a`` bit for bit (the zero columns still receive
    gradient). Returns False (and changes nothing) when the widths do not match."""
    cols = cols or slice(0, linear.in_features)
    width = cols.stop - cols.start
    if width != linear.out_features:
        return False
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[:, cols] = torch.eye(width, dtype=linear.weight.dtype)
        if linear.bias is not None:
            linear.bias.zero_()
    return True


def zero_(*modules: nn.Module) -> None:
    """Set every parameter of ``modules`` to exactly zero."""
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.zero_()
