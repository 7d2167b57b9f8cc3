"""Speech VAEs of unsupervised AVSE: the audio-only ``a-vae`` and the audio-visual ``av-vae``
(with any fusion of the zoo, and the AV-CVAE visual prior as a switch).

(Over 400 lines on purpose: the VAE family -- config, shared base class, A-VAE, AV-VAE, AV-CVAE --
whose subclasses implement encode / decode / prior on the base's shared input normalisation,
output heads and loss; splitting would separate them from the code they build on.)

``a-vae`` (Leglaive et al. 2018; avse-vae ``myVAE``): encoder F -> 128 (tanh) -> (mu, logvar) of
dim L; decoder L -> 128 (tanh) -> F speech log-variance; complex Gaussian likelihood (the
Itakura-Saito divergence); prior N(0, I). Defaults: L = 16 (av-dkf; use ``latent_dim: 32`` for the
avse-vae / AV-CVAE setting).

``av-vae``: a visual front-end (:mod:`models.visual`) gives ``vfeat [B, T, Dv]`` once per
utterance (lips of another size than ``lip_size`` are resized by area interpolation, the same
resize as in training); a fusion module (:mod:`models.fusion`) joins audio and video wherever they meet:
in the encoder (the pre-activation audio projection ``Lin_x(x)`` with ``vfeat``) and/or in the
decoder (``Lin_z(z)`` with ``vfeat``), chosen by ``fusion_position`` ("both", "encoder",
"decoder"). With ``fusion: concat`` and ``fusion_position: both`` this is the published AV-VAE
(``tanh(Lin_x x + Lin_v v)``). ``visual_prior: true`` adds the AV-CVAE prior p(z | v)
(Sadeghi et al. 2020: ReLU(Linear(vfeat)) -> mean, logvar) and trains with the CVAE loss
``alpha ELBO(q || p(z|v)) + (1 - alpha) E_{p(z|v)} ln p(s | z, v)`` (``cvae_alpha``).

``av-cvae`` (Sadeghi et al., TASLP 2020, "Audio-visual speech enhancement using conditional
variational auto-encoders"; avse-vae ``CVAERTied``, av-dkf ``AV_CVAE``): the ``av-vae`` with the
visual prior always on and ``latent_dim: 32`` by default (avse-vae's L; any ``latent_dim`` and any
fusion may be set, ``visual_prior: false`` is refused). A preset names it plainly,
``{name: av-cvae, fusion: concat}`` (label ``av-cvae/concat``; ``concat`` is the published additive
fusion). Training recipe and deliberate deviations from the published code:

* alpha = 0.9, the value of av-dkf ``AV_CVAE.get_loss``; avse-vae ``train_CVAE.py`` defaults its
  ``--beta`` (the same weight) to 1.0, i.e. a pure ELBO against p(z | v). The alpha of the paper's
  experiments could not be checked (``docs/references.md``).
* started from the trained A-VAE (:meth:`AVVAE.init_from_avae`, as published). Deviations: the
  prior heads are then zeroed, so p(z | v) starts as the A-VAE's N(0, I) and the first ELBO is
  the A-VAE's (the published prior layers start at random); and an A-VAE with a smaller latent
  dimension (the presets' A-VAE has L = 16) is embedded exactly: its L dimensions are copied, the
  extra ones start with q = N(0, 1) and no effect on the decoder (published: the A-VAE and the
  AV-CVAE both have L = 32).
* the published visual-branch forcing (avse-vae ``pgrad`` 0.2: audio-path weights frozen in a
  random 20 % of the batches) is not implemented; the optimiser, lr and early stopping are the
  run's ``training`` settings (av-dkf fine-tunes the AV-CVAE at lr 3e-5, avse-vae at 1e-4).

Every enhancement algorithm uses the model's prior (:meth:`SpeechModel.prior`), so the visual
prior enters MCEM, PEEM, LDEM and VEM unchanged; its per-frame precision is recorded as a
reliability trace (``weights_prior``, :func:`prior_visual_weight`).

Encoder input: ``input_transform: "log"`` (default) feeds ``log(|S|^2 + eps)`` standardised per
frequency with statistics of the training set (stored as buffers in the checkpoint): this
trains much faster on few CPU minutes. ``"linear"`` feeds the raw power as the published code
does. The decoder output and the likelihood are the same in both cases.

Temporal option ``temporal: gru | conv`` adds a residual temporal layer over the audio projection
in the encoder (a unidirectional GRU or a non-causal convolution) and, unless the fusion options
say otherwise, the same kind of temporal context in the fusion's weight computations. The
decoder's own layers stay frame-wise (the per-frame MH of MCEM relies on that); a decoder
fusion with temporal context couples frames only through it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

import torch
from torch import nn

from benchmark.configtools import FieldError, check_fields, did_you_mean
from models.base import DecoderOutput, EncoderOutput, SpeechModel
from models.fusion.base import TEMPORAL_KINDS, Fusion, TemporalContext, count_macs
from models.registry import FRONTENDS, FUSIONS, MODELS
from models.visual import FrontendConfig

LOG_EPS = 1e-8
POWER_FLOOR = 1e-12


@dataclass
class VAEConfig:
    """Configuration of both VAEs (the audio-only model ignores the visual fields)."""

    n_freq: int = field(default=513, metadata={"range": (2, None)})
    hidden: int = field(default=128, metadata={"range": (1, None)})
    latent_dim: int = field(default=16, metadata={"range": (1, None)})
    input_transform: str = field(default="log", metadata={"choices": ("log", "linear")})
    temporal: str = field(default="none", metadata={"choices": TEMPORAL_KINDS})
    temporal_kernel: int = field(default=5, metadata={"range": (1, None)})  # odd (checked with temporal: conv)
    # audio-visual only
    lip_size: int = field(default=64, metadata={"range": (8, 512)})
    frontend: str = "linear"  # a name of models.registry.FRONTENDS (checked when the model is built)
    visual_dim: int = field(default=128, metadata={"range": (1, None)})
    frontend_hidden: int = field(default=512, metadata={"range": (1, None)})
    frontend_channels: int = field(default=16, metadata={"range": (1, None)})
    fusion: Optional[str] = "concat"
    fusion_position: str = field(default="both", metadata={"choices": ("both", "encoder", "decoder")})
    fusion_params: dict[str, Any] = field(default_factory=dict)
    visual_prior: bool = False
    cvae_alpha: float = field(default=0.9, metadata={"range": (0.0, 1.0)})
    #: added to |S|^2 in the training targets: digital silence (exact zeros, e.g. in synthetic
    #: speech) would otherwise drive the decoder variance to zero (IS divergence of 0 is -log 0)
    power_floor: float = field(default=1e-5, metadata={"range": (0.0, None)})

    def __post_init__(self) -> None:
        """Types, declared ranges and choices of every field (:func:`benchmark.configtools.check_fields`)."""
        check_fields(self)
        if self.temporal == "conv" and self.temporal_kernel % 2 != 1:
            raise FieldError(type(self).__name__, "temporal_kernel", f"must be odd with temporal: conv, got {self.temporal_kernel}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VAEConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown model option(s) {unknown}{did_you_mean(unknown[0], known)}; known: {sorted(known)}")
        return cls(**d)  # __post_init__ checks types, ranges and choices


def kl_diag(mu: torch.Tensor, logvar: torch.Tensor, p_mu: torch.Tensor | None = None,
            p_logvar: torch.Tensor | None = None) -> torch.Tensor:
    """KL(N(mu, e^logvar) || N(p_mu, e^p_logvar)) summed over the last dim (prior N(0, I) if None)."""
    if p_mu is None:
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
    return 0.5 * (p_logvar - logvar + (logvar.exp() + (mu - p_mu).pow(2)) / p_logvar.exp() - 1.0).sum(-1)


def _level_kw(level: Optional[torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{"level": level}`` for a fusion call, or nothing when there is no level."""
    return {} if level is None else {"level": level}


def is_divergence(power: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Itakura-Saito divergence d_IS(P || e^logvar) per TF bin (the complex-Gaussian NLL up to a
    constant in the model); ``P`` is floored at 1e-12 for the ``log P`` constant only."""
    ratio = power * torch.exp(-logvar)
    return ratio - torch.log(power.clamp_min(POWER_FLOOR)) + logvar - 1.0


class _VAEBase(SpeechModel):
    """Shared encoder/decoder machinery (frame-wise MLPs with optional temporal layer)."""

    def __init__(self, config: VAEConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = VAEConfig.from_dict(kwargs)
        elif kwargs:
            raise TypeError("pass either a VAEConfig or keyword options, not both")
        self.config = config
        c = config
        self.register_buffer("in_mean", torch.zeros(c.n_freq))
        self.register_buffer("in_std", torch.ones(c.n_freq))
        self.lin_x = nn.Linear(c.n_freq, c.hidden)
        self.enc_temporal = TemporalContext(c.temporal, c.hidden, c.hidden, c.temporal_kernel) if c.temporal != "none" else None
        self.enc_mu = nn.Linear(c.hidden, c.latent_dim)
        self.enc_lv = nn.Linear(c.hidden, c.latent_dim)
        self.lin_z = nn.Linear(c.latent_dim, c.hidden)
        self.dec_out = nn.Linear(c.hidden, c.n_freq)

    # -- contract --------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def n_freq(self) -> int:
        return self.config.n_freq

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)

    @classmethod
    def from_config(cls, d: dict[str, Any]) -> "_VAEBase":
        return cls(VAEConfig.from_dict(dict(d)))

    # -- pieces ----------------------------------------------------------------------------
    def set_input_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-frequency standardisation of the encoder input (log transform only)."""
        self.in_mean.copy_(mean.reshape(-1))
        self.in_std.copy_(std.reshape(-1).clamp_min(1e-3))

    def init_output_bias(self, mean_log_power: torch.Tensor) -> None:
        """Start the decoder at the average training log-power per frequency (a training-speed
        initialisation; the published code starts from PyTorch's default)."""
        with torch.no_grad():
            self.dec_out.bias.copy_(mean_log_power.reshape(-1))

    def encoder_input(self, power: torch.Tensor) -> torch.Tensor:
        if power.shape[-1] != self.config.n_freq:
            raise ValueError(f"{self.name}: expected {self.config.n_freq} frequency bins, got {power.shape[-1]}")
        if self.config.input_transform == "log":
            return (torch.log(power + LOG_EPS) - self.in_mean) / self.in_std
        return power

    def audio_projection(self, power: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pre-activation audio projection ``Lin_x(x)`` (+ residual temporal layer) ``[B, T, H]``."""
        a = self.lin_x(self.encoder_input(power))
        if self.enc_temporal is not None:
            a = a + self.enc_temporal(a, mask)
        return a

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.enc_mu(h), self.enc_lv(h)

    def training_loss(self, power: torch.Tensor, vfeat: Optional[torch.Tensor], mask: torch.Tensor, *,
                      beta: float = 1.0, generator: torch.Generator | None = None,
                      encoder_power: Optional[torch.Tensor] = None,
                      level: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """Negative ELBO per real frame (``loss``, targets ``|S|^2 + power_floor``), with its parts: ``is_per_bin`` (mean IS
        divergence per real TF bin, the reconstruction figure reported) and ``kl`` (per frame).
        AV-CVAE models (visual prior) use the CVAE loss of the module docstring. ``encoder_power``:
        a degraded copy of ``power`` for the encoder only (audio-side augmentation, see
        :func:`models.augment.degrade_audio`); the target stays ``power``. ``level [B, T]``: the
        true visual corruption level, given to the model only when it uses it (:attr:`uses_level`)."""
        lk = {"level": level} if (level is not None and self.uses_level) else {}
        mu, logvar = self.encode(power if encoder_power is None else encoder_power, vfeat, mask, **lk)
        power = power + self.config.power_floor
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        rec = is_divergence(power, self.decode(z, vfeat, mask, **lk)).sum(-1)  # [B, T]
        p_mu, p_lv = self.prior(vfeat, mask)
        kl = kl_diag(mu, logvar, p_mu, p_lv) if self.uses_visual_prior else kl_diag(mu, logvar)
        m = mask.to(power.dtype)
        n = m.sum().clamp_min(1.0)
        rec_m, kl_m = (rec * m).sum() / n, (kl * m).sum() / n
        loss = rec_m + beta * kl_m
        if self.uses_visual_prior and self.config.cvae_alpha < 1.0:
            eps2 = torch.randn(p_mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            zp = p_mu + torch.exp(0.5 * p_lv) * eps2
            rec_p = (is_divergence(power, self.decode(zp, vfeat, mask, **lk)).sum(-1) * m).sum() / n
            a = self.config.cvae_alpha
            loss = a * loss + (1 - a) * rec_p
        return {"loss": loss, "is_per_bin": rec_m / self.config.n_freq, "kl": kl_m}

    @property
    def uses_visual_prior(self) -> bool:
        return False

    @property
    def uses_level(self) -> bool:
        """Whether ``encode``/``decode`` read the true corruption level (only oracle fusions do)."""
        return False

    def cost_summary(self, n_frames: int = 16) -> dict[str, int]:
        """Parameter count and multiply-adds per frame of one encode + one decode (+ visual features)."""
        B, T = 1, n_frames
        mask = torch.ones(B, T, dtype=torch.bool)
        power = torch.ones(B, T, self.config.n_freq)
        lips = torch.zeros(B, T, self.config.lip_size, self.config.lip_size) if self.is_audio_visual else None

        def run() -> None:
            v = self.visual_features(lips, mask)
            mu, _ = self.encode(power, v, mask)
            self.decode(mu, v, mask)
            if self.uses_visual_prior:
                self.prior(v, mask)

        macs = count_macs(self, run)
        return {"params": sum(p.numel() for p in self.parameters()), "macs": int(round(macs / T))}


@MODELS.register("a-vae")
class AVAE(_VAEBase):
    """Audio-only VAE: F -> 128 tanh -> L -> 128 tanh -> F log-variance, N(0, I) prior."""

    name = "a-vae"
    is_audio_visual = False
    frame_local_decoder = True  # Lin_z, tanh, the output layer: frame-wise MLP

    def encode(self, power, vfeat, mask, *, return_weights: bool = False):
        mu, lv = self.heads(torch.tanh(self.audio_projection(power, mask)))
        return EncoderOutput(mu, lv, None) if return_weights else (mu, lv)

    def decode(self, z, vfeat, mask, *, return_weights: bool = False):
        d = self.dec_out(torch.tanh(self.lin_z(z)))
        return DecoderOutput(d, None) if return_weights else d


@MODELS.register("av-vae")
class AVVAE(_VAEBase):
    """Audio-visual (C)VAE: visual front-end + a fusion module in the encoder and/or decoder."""

    name = "av-vae"
    is_audio_visual = True
    #: the registered model whose trained entry this one starts from (:meth:`init_from_avae`;
    #: read by the runner's train stage)
    init_from = "a-vae"

    @property
    def frame_local_decoder(self) -> bool:  # type: ignore[override]
        """Frame-wise layers, and a decoder fusion (if any) without temporal context over the
        audio stream (:attr:`models.fusion.base.Fusion.couples_frames`)."""
        return self.fusion_dec is None or not self.fusion_dec.couples_frames

    def __init__(self, config: VAEConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = self.config
        if not c.fusion:
            raise ValueError(f"av-vae needs a fusion; known: {', '.join(FUSIONS.names())}")
        self.frontend = FRONTENDS.get(c.frontend)(FrontendConfig(lip_size=c.lip_size, out_dim=c.visual_dim,
                                                                 hidden=c.frontend_hidden, channels=c.frontend_channels))
        fopts = {**c.fusion_params, "audio_dim": c.hidden, "visual_dim": c.visual_dim, "out_dim": c.hidden}
        inherit = {"temporal": c.temporal, "temporal_kernel": c.temporal_kernel}  # where the fusion has them
        fcls = FUSIONS.get(c.fusion)
        self.fusion_enc: Optional[Fusion] = fcls.from_options(fopts, inherited=inherit) if c.fusion_position in ("both", "encoder") else None
        self.fusion_dec: Optional[Fusion] = fcls.from_options(fopts, inherited=inherit) if c.fusion_position in ("both", "decoder") else None
        if c.visual_prior:
            self.prior_hidden = nn.Linear(c.visual_dim, c.hidden)
            self.prior_mu = nn.Linear(c.hidden, c.latent_dim)
            self.prior_lv = nn.Linear(c.hidden, c.latent_dim)

    @property
    def uses_visual_prior(self) -> bool:
        return self.config.visual_prior

    @property
    def uses_level(self) -> bool:
        """Whether a fusion reads the true per-frame corruption ``level`` (the oracle control):
        then ``encode``/``decode`` take ``level [B, T]`` and the enhancement passes it."""
        return any(getattr(f, "uses_level", False) for f in (self.fusion_enc, self.fusion_dec) if f is not None)

    def _require(self, vfeat: Optional[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        if vfeat is None:
            raise ValueError("av-vae needs visual features: call model.visual_features(lips, mask) first")
        if vfeat.shape[:-1] != mask.shape:
            raise ValueError(f"visual features {tuple(vfeat.shape)} do not match the mask {tuple(mask.shape)}")
        return vfeat

    def visual_features(self, lips: Optional[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        if lips is None:
            raise ValueError("av-vae needs lip frames [B, T, H, W] in [0, 1] at the STFT frame rate")
        if lips.dim() != 4 or lips.shape[:2] != mask.shape:
            raise ValueError(f"lips {tuple(lips.shape)} must be [B, T, H, W] matching the mask {tuple(mask.shape)}")
        from models.features import resize_lips_float

        return self.frontend(resize_lips_float(lips, self.config.lip_size), mask)

    def encode(self, power, vfeat, mask, level=None, *, return_weights: bool = False):
        """``(mu, logvar)`` ``[B, T, L]``; with ``return_weights`` an :class:`EncoderOutput` that also
        carries the encoder fusion's weights ``[B, T, 2]`` (with their graph; None without one)."""
        a = self.audio_projection(power, mask)
        if self.fusion_enc is None:
            mu, lv = self.heads(torch.tanh(a))
            return EncoderOutput(mu, lv, None) if return_weights else (mu, lv)
        out = self.fusion_enc(a, self._require(vfeat, mask), mask, **_level_kw(level))
        mu, lv = self.heads(out.fused)
        return EncoderOutput(mu, lv, out.weights) if return_weights else (mu, lv)

    def decode(self, z, vfeat, mask, level=None, *, return_weights: bool = False):
        """Speech log-variance ``[..., B, T, F]`` for ``z [..., B, T, L]``; with ``return_weights`` a
        :class:`DecoderOutput` that also carries the decoder fusion's weights ``[B, T, 2]`` (mean
        over the sample dims of ``z``; None without a decoder fusion)."""
        b = self.lin_z(z)
        if self.fusion_dec is None:
            d = self.dec_out(torch.tanh(b))
            return DecoderOutput(d, None) if return_weights else d
        vfeat = self._require(vfeat, mask)
        lead = b.shape[:-3]
        B, T, H = b.shape[-3:]
        if lead:  # extra sample dims: [N, B, T, .] against the shared vfeat (fusion.forward_samples)
            n = math.prod(lead)
            out = self.fusion_dec.forward_samples(b.reshape(n, B, T, H), vfeat, mask, **_level_kw(level))
            fused = out.fused.reshape(*lead, B, T, -1)
            w = None if out.weights is None else out.weights.mean(0)
        else:
            out = self.fusion_dec(b, vfeat, mask, **_level_kw(level))
            fused, w = out.fused, out.weights
        d = self.dec_out(fused)
        return DecoderOutput(d, w) if return_weights else d

    def prior(self, vfeat, mask):
        if not self.config.visual_prior:
            return super().prior(vfeat, mask)
        h = torch.relu(self.prior_hidden(self._require(vfeat, mask)))
        return self.prior_mu(h), self.prior_lv(h)

    def init_from_avae(self, avae: AVAE) -> list[str]:
        """Copy the audio path of a trained A-VAE (input statistics, ``Lin_x``, encoder heads,
        ``Lin_z``, output layer, temporal layer when configured alike) and make the fusions pass
        the audio through at the start (published: the AV-CVAE is initialised from the A-VAE).

        An A-VAE with a *smaller* latent dimension L_a is embedded exactly: latent dims ``< L_a``
        get its weights; the others start with a zero encoder mean and log-variance (q = N(0, 1),
        the prior) and zero ``Lin_z`` columns (the decoder ignores them), so the model starts as
        the A-VAE. With a visual prior, its mean and log-variance heads are zeroed: p(z | v)
        starts as N(0, I), the A-VAE's prior. Returns the names of what was copied or set."""
        a, c = avae.config, self.config
        if a.n_freq != c.n_freq or a.hidden != c.hidden or a.latent_dim > c.latent_dim:
            raise ValueError("cannot initialise from an A-VAE of different sizes "
                             f"(A-VAE F/H/L {a.n_freq}/{a.hidden}/{a.latent_dim}, "
                             f"this {c.n_freq}/{c.hidden}/{c.latent_dim}; a smaller A-VAE latent dim is embedded)")
        copied = []
        names = ["in_mean", "in_std", "lin_x", "enc_mu", "enc_lv", "lin_z", "dec_out"]
        if a.temporal == c.temporal and self.enc_temporal is not None:
            names.append("enc_temporal")
        src = avae.state_dict()
        own = self.state_dict()
        La = a.latent_dim
        with torch.no_grad():
            for k, v in src.items():
                if k.split(".")[0] not in names or k not in own:
                    continue
                if own[k].shape == v.shape:
                    own[k].copy_(v)
                    copied.append(k)
                elif k.startswith(("enc_mu.", "enc_lv.")):  # [L, H] / [L]: latent dims on dim 0
                    own[k].zero_()
                    own[k][:La].copy_(v)
                    copied.append(f"{k} (latent dims 0..{La - 1}; the others q = N(0, 1))")
                elif k == "lin_z.weight":  # [H, L]
                    own[k].zero_()
                    own[k][:, :La].copy_(v)
                    copied.append(f"{k} (latent dims 0..{La - 1}; the others unused at the start)")
            if c.visual_prior:
                for head in (self.prior_mu, self.prior_lv):
                    head.weight.zero_()
                    head.bias.zero_()
                copied.append("visual prior: N(0, I) at the start")
        for f in (self.fusion_enc, self.fusion_dec):
            if f is not None and f.init_audio_identity():
                copied.append(f"{f.name}: audio identity")
        return copied


CVAE_DEFAULTS: dict[str, Any] = {"visual_prior": True, "latent_dim": 32}


@MODELS.register("av-cvae")
class AVCVAE(AVVAE):
    """AV-CVAE (Sadeghi et al. 2020): the AV-VAE with the visual prior p(z | v), L = 32 by default.

    Any fusion; the training recipe and the deviations from the published code are in the module
    docstring."""

    name = "av-cvae"
    #: option defaults that differ from :class:`VAEConfig`'s (also applied by the spec validation)
    config_defaults: dict[str, Any] = CVAE_DEFAULTS

    def __init__(self, config: VAEConfig | None = None, **kwargs: Any) -> None:
        if config is None:
            config, kwargs = VAEConfig.from_dict({**CVAE_DEFAULTS, **kwargs}), {}
        if not config.visual_prior:
            raise ValueError("av-cvae is the AV-VAE with the visual prior p(z | v): visual_prior must be true "
                             "(use av-vae for the model without it)")
        super().__init__(config, **kwargs)

    @classmethod
    def from_config(cls, d: dict[str, Any]) -> "AVCVAE":
        return cls(VAEConfig.from_dict({**CVAE_DEFAULTS, **dict(d)}))


def prior_visual_weight(prior_logvar: torch.Tensor) -> torch.Tensor:
    """Reliability weights ``[..., 2]`` of a visual prior p(z | v) from its log-variance ``[..., L]``:
    column 1 is the precision share ``w_v = pi / (1 + pi)`` with ``pi = mean_l exp(-logvar_l)`` the
    mean prior precision relative to N(0, I) (whose precision is 1), column 0 is ``1 - w_v``.
    ``w_v = 0.5`` for a prior as broad as N(0, I), -> 1 as p(z | v) becomes certain, -> 0 as it
    becomes broader than N(0, I): the visual share of the precision if p(z | v) and N(0, I) were
    combined as a product of experts."""
    prec = torch.exp(-prior_logvar).mean(-1, keepdim=True)
    w = prec / (1.0 + prec)
    return torch.cat([1.0 - w, w], -1)


def describe_models() -> dict[str, str]:
    """``{name: "params P, MACs/frame M (settings)"}`` of the VAEs at their default settings
    (av-vae and av-cvae: concat fusion in encoder and decoder, linear front-end, 64x64 lips), for
    ``run_benchmark.py list``."""
    out = {}
    for name, model, what in (("a-vae", AVAE(), "defaults"), ("av-vae", AVVAE(), "concat, linear front-end, 64x64 lips"),
                              ("av-cvae", AVCVAE(), "L = 32, concat, linear front-end, 64x64 lips")):
        c = model.cost_summary(n_frames=4)
        out[name] = f"{c['params'] / 1e6:.2f}M params, {c['macs'] / 1e6:.2f}M MACs/frame ({what})"
    return out
