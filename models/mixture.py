"""Inference-level reliability baselines: composite speech models that switch, frame by frame,
between a trained audio-only VAE and a trained audio-visual VAE.

* ``mixture-vae`` (Sadeghi & Alameda-Pineda, ICASSP 2020, arXiv 1911.03930): an i.i.d.
  per-frame switch ``m_t in {A, AV}`` with prior ``P(m_t = AV) = prior_av``.
* ``switching-vae`` (Sadeghi & Alameda-Pineda, ICASSP 2021, arXiv 2102.04144): the switch is a
  two-state Markov chain with ``P(m_t = m_{t-1}) = stay_prob`` (temporally smooth choice).

Neither needs training: both are built from two trained checkpoints
(:meth:`MixtureVAE.from_checkpoints`) or models (:meth:`MixtureVAE.from_models`). In a spec, a
composite model entry names the *labels* of two other model entries, which the runner trains
first and resolves with :func:`build_composite`::

    models:
      - {name: a-vae}
      - {name: av-vae, fusion: concat}
      - {name: switching-vae, params: {audio: a-vae, visual: av-vae/concat, stay_prob: 0.95}}

The visual component may be any audio-visual VAE, including the AV-CVAE (``av-vae`` with
``visual_prior: true``): each component's latent keeps its own prior (``model.prior``, here
p(z | v)) in its samplers and in its frame evidence.

Enhancement goes through :meth:`MixtureVAE.custom_enhance` (``enhance()`` delegates to it): the
EM of :mod:`models.enhancement.switching`, with the MCEM-style (``mcem``) or Langevin-style
(``ldem``) E-step; the per-frame posterior ``P(m_t = AV)`` is recorded as the visual reliability
weight ``traces["weights_decoder"] = [1 - p, p]``, exactly like the fusion weights.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Optional

import torch

from models.base import SpeechModel
from models.registry import MODELS


@dataclass
class CompositeConfig:
    """Settings of a composite (mixture / switching) model; ``audio``/``visual`` are the labels
    (or checkpoint paths) of its two components."""

    audio: str = "a-vae"
    visual: str = "av-vae/concat"
    prior_av: float = field(default=0.5, metadata={"range": (0.0, 1.0)})  # P(m = AV) (mixture) / P(m_1 = AV) (switching)
    stay_prob: float = field(default=0.95, metadata={"range": (0.0, 1.0)})  # switching only: P(m_t = m_{t-1})
    learn_switch: bool = False  # M-step update of pi / the transition matrix per utterance
    latent_posterior: str = field(default="conditional", metadata={"choices": ("conditional", "tempered")})  # docs/switching_em.md
    # per-frame evidence of the conditional switch step: "laplace" (log joint + posterior entropy)
    # or "log_joint" (the former score, biased towards the narrower posterior; docs/switching_em.md)
    evidence: str = field(default="laplace", metadata={"choices": ("laplace", "log_joint")})
    # "laplace" only: Gauss-Newton steps towards the mode (SwitchConfig.newton_steps)
    newton_steps: int = field(default=2, metadata={"range": (0, 10)})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CompositeConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown composite-model option(s) {unknown}; known: {sorted(known)}")
        cfg = cls(**d)
        for name in ("prior_av", "stay_prob"):
            v = getattr(cfg, name)
            if not isinstance(v, (int, float)) or not 0.0 < float(v) < 1.0:
                raise ValueError(f"composite-model option {name}={v!r}: must be a probability strictly between 0 and 1")
        if cfg.latent_posterior not in ("conditional", "tempered"):
            raise ValueError(f"composite-model option latent_posterior={cfg.latent_posterior!r}: must be 'conditional' or 'tempered'")
        if not isinstance(cfg.newton_steps, int) or not 0 <= cfg.newton_steps <= 10:
            raise ValueError(f"composite-model option newton_steps={cfg.newton_steps!r}: must be an integer in [0, 10]")
        if cfg.evidence not in ("laplace", "log_joint"):
            raise ValueError(f"composite-model option evidence={cfg.evidence!r}: must be 'laplace' or 'log_joint'")
        for name in ("audio", "visual"):
            if not isinstance(getattr(cfg, name), str) or not getattr(cfg, name):
                raise ValueError(f"composite-model option {name!r}: expected the label of another model entry")
        return cfg


class MixtureVAE(SpeechModel):
    """Per-frame i.i.d. mixture of an audio-only and an audio-visual VAE (inference-level switch)."""

    name = "mixture-vae"
    is_audio_visual = True
    #: composites are built from trained components, never trained themselves
    needs_training = False
    is_composite = True
    switch_kind = "mixture"
    #: the roles of its components: fields of ``config_class`` naming another entry's label
    components = ("audio", "visual")
    config_class = CompositeConfig
    #: the algorithms it defines a switching E-step for (models.enhancement.switching's
    #: SWITCH_ESTEPS; a test checks that they agree); other pairs are not run
    algorithms = ("mcem", "ldem")

    def __init__(self, audio_model: SpeechModel, av_model: SpeechModel, config: Optional[CompositeConfig] = None) -> None:
        super().__init__()
        self.config = config or CompositeConfig()
        if getattr(audio_model, "is_audio_visual", False):
            raise ValueError(f"{self.name}: the 'audio' component must be audio-only, got {getattr(audio_model, 'name', audio_model)!r}")
        if not getattr(av_model, "is_audio_visual", False):
            raise ValueError(f"{self.name}: the 'visual' component must be audio-visual, got {getattr(av_model, 'name', av_model)!r}")
        if audio_model.n_freq != av_model.n_freq:
            raise ValueError(f"{self.name}: the components disagree on the number of frequency bins ({audio_model.n_freq} vs {av_model.n_freq})")
        self.audio_model = audio_model
        self.av_model = av_model

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_models(cls, audio_model: SpeechModel, av_model: SpeechModel, **options: Any) -> "MixtureVAE":
        """Build from two model objects; ``options`` are :class:`CompositeConfig` fields."""
        return cls(audio_model, av_model, CompositeConfig.from_dict(options))

    @classmethod
    def from_checkpoints(cls, audio_ckpt: str | os.PathLike, av_ckpt: str | os.PathLike, *,
                         map_location: str | torch.device = "cpu", **options: Any) -> "MixtureVAE":
        """Build from two checkpoints (:func:`models.load`); ``options`` as in :meth:`from_models`."""
        from models.checkpoint import load

        options.setdefault("audio", str(audio_ckpt))
        options.setdefault("visual", str(av_ckpt))
        return cls.from_models(load(audio_ckpt, map_location=map_location), load(av_ckpt, map_location=map_location), **options)

    @classmethod
    def from_config(cls, d: dict[str, Any]) -> "MixtureVAE":
        """Build from a config whose ``audio``/``visual`` are checkpoint paths. Labels of other
        spec entries cannot be resolved here: the runner uses :func:`build_composite`."""
        cfg = CompositeConfig.from_dict(dict(d))
        missing = [p for p in (cfg.audio, cfg.visual) if not os.path.exists(p)]
        if missing:
            raise ValueError(
                f"{cls.name}: params audio={cfg.audio!r} / visual={cfg.visual!r} must name other model entries "
                f"(resolved by the runner through models.mixture.build_composite) or existing checkpoints; "
                f"not found: {missing}"
            )
        return cls.from_checkpoints(cfg.audio, cfg.visual, **asdict(cfg))

    # -- the SpeechModel contract, as far as it applies -----------------------------------
    @property
    def latent_dim(self) -> int:
        return self.av_model.latent_dim

    @property
    def n_freq(self) -> int:
        return self.av_model.n_freq

    def visual_features(self, lips: Optional[torch.Tensor], mask: torch.Tensor) -> Optional[torch.Tensor]:
        return self.av_model.visual_features(lips, mask)

    def encode(self, *args: Any, **kwargs: Any):  # pragma: no cover - guard
        raise NotImplementedError(
            f"{self.name} is an inference-level composite with one latent per component: it has no single "
            f"encoder/decoder; enhance it through custom_enhance (models.enhancement.switching)"
        )

    decode = encode

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)

    def component_labels(self) -> tuple[str, str]:
        """Labels (or paths) of the audio-only and audio-visual components."""
        return self.config.audio, self.config.visual

    def component_models(self) -> dict[str, SpeechModel]:
        """The speech models by role, in the switch's order (0 = audio-only, 1 = audio-visual):
        the EM builds one context per component from them (:class:`models.enhancement.em.EMContext`)."""
        return {"audio": self.audio_model, "visual": self.av_model}

    def switch_config(self):
        """The switch model of this composite (:class:`models.enhancement.switch_posterior.SwitchConfig`)."""
        from models.enhancement.switch_posterior import SwitchConfig

        c = self.config
        return SwitchConfig(kind=self.switch_kind, prior_av=c.prior_av, stay_prob=c.stay_prob, learn=c.learn_switch,
                            latent_posterior=c.latent_posterior, evidence=c.evidence, newton_steps=c.newton_steps)

    def cost_summary(self, n_frames: int = 16) -> dict[str, int]:
        """Parameters and multiply-adds per frame of the two components together."""
        out = {"params": 0, "macs": 0}
        for m in (self.audio_model, self.av_model):
            cs = m.cost_summary(n_frames) if hasattr(m, "cost_summary") else {"params": sum(p.numel() for p in m.parameters()), "macs": 0}
            out["params"] += int(cs.get("params", 0))
            out["macs"] += int(cs.get("macs", 0))
        return out

    # -- enhancement -----------------------------------------------------------------------
    def custom_enhance(self, batch: Any, algorithm: str, config: Any = None, **kwargs: Any):
        """Enhance a :class:`models.enhancement.batch.Batch` with the switching EM of
        ``algorithm`` (``mcem`` or ``ldem``); ``config`` is that algorithm's config object or a
        params mapping. Keyword options (``rank``, ``seed``, ``stft_cfg``, ``progress``) as in
        :func:`models.enhancement.em.run_em`. Returns one ``ItemResult`` per utterance."""
        from models.enhancement.switching import enhance_batch

        return enhance_batch(self, batch, algorithm, config, **kwargs)


class SwitchingVAE(MixtureVAE):
    """Switching VAE: the per-frame A/AV switch is a Markov chain (forward-backward in the EM)."""

    name = "switching-vae"
    switch_kind = "markov"


MODELS.register("mixture-vae", MixtureVAE)
MODELS.register("switching-vae", SwitchingVAE)

COMPOSITES = {"mixture-vae": MixtureVAE, "switching-vae": SwitchingVAE}


def is_composite(name: str) -> bool:
    """Whether the registered model ``name`` is an inference-level composite (no training)."""
    return name in COMPOSITES


def composite_dependencies(params: dict[str, Any]) -> tuple[str, str]:
    """The labels of the (audio, visual) model entries a composite entry's ``params`` name."""
    cfg = CompositeConfig.from_dict(dict(params or {}))
    return cfg.audio, cfg.visual


def build_composite(name: str, params: dict[str, Any], resolve: Callable[[str], SpeechModel]) -> MixtureVAE:
    """Build the composite ``name`` from its spec ``params``; ``resolve(label)`` returns the
    trained model of another entry (e.g. ``models.load`` of its checkpoint)."""
    if name not in COMPOSITES:
        raise KeyError(f"unknown composite model {name!r}; known: {', '.join(sorted(COMPOSITES))}")
    cfg = CompositeConfig.from_dict(dict(params or {}))
    models = []
    for role, label in (("audio", cfg.audio), ("visual", cfg.visual)):
        try:
            models.append(resolve(label))
        except Exception as exc:
            raise ValueError(f"{name}: cannot resolve its {role} component {label!r}: {exc}") from exc
    return COMPOSITES[name](models[0], models[1], cfg)
