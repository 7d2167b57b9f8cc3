"""EM for the inference-level reliability baselines: a per-frame switch between an audio-only
and an audio-visual speech model (mixture of VAEs, Sadeghi & Alameda-Pineda ICASSP 2020;
switching VAE, ICASSP 2021).

The papers' update equations were not reachable here; everything below is derived from the
model as stated, in ``docs/switching_em.md`` (structured mean-field variational EM):

* model: ``x_ft = sqrt(g_t) s_ft + b_ft``, ``b_ft ~ N_c(0, (WH)_ft)``; a switch
  ``m_t in {A, AV}`` (i.i.d. with ``P(AV) = pi`` for the mixture, a two-state Markov chain
  for the switching model); one latent chain per component ``z^k_t ~ p_k(z | v)`` and
  ``s_ft | m_t = k, z^k_t ~ N_c(0, sigma^2_{k,f}(z^k_t, v_t))``.
* posterior factorisation ``q(m) prod_t prod_k q(z^k_t | m_t = k)`` (default,
  ``latent_posterior="conditional"``):
  - each component's latent is sampled from its own posterior given that it generated the
    frame, by random-walk Metropolis-Hastings (``mcem``) or unadjusted Langevin dynamics
    (``ldem``): the sampler objects of :mod:`models.enhancement.samplers` that those
    single-model algorithms use;
  - ``q(m)`` from the per-frame "emission" scores ``L_t(k)`` = the frame evidence
    ``log p(x_t | m_t = k)``, estimated by Laplace: the log joint
    ``log N_c(x_t; 0, g_t sigma^2_k + WH) + log p_k(z)`` at the mode (the samples' mean refined
    by Gauss-Newton steps) plus the entropy of the Gaussian posterior approximation
    (``evidence="laplace"``, default; ``"log_joint"``: the samples' mean log joint alone, the
    former score, biased towards the narrower posterior); a softmax for the mixture,
    forward-backward for the chain;
  - alternative ``latent_posterior="tempered"`` (mean field ``q(m) prod_k q(z^k)``): the
    latent target's likelihood is tempered by the responsibility ``q(m_t = k)`` and the
    emissions are the expected log-likelihoods (prone to winner-takes-all collapse);
  - M-step: multiplicative IS updates of ``W, H, g`` on the responsibility-weighted
    expected cost (weights ``q(m_t = k) / R`` on each of the ``R`` samples of component k);
* final estimate: ``E_q[s_ft] = sum_k q(m_t = k) E_q(z^k)[g sigma^2_k / (g sigma^2_k + WH)] x_ft``.

The iterations are those of every EM algorithm: :class:`SwitchingEM` is an
:class:`models.enhancement.em.EMAlgorithm` with K = 2 speech-prior components, run by
:func:`models.enhancement.em.em_loop` (the samples of both components with their per-frame
responsibility weights go to the weighted M-step and cost of :mod:`models.enhancement.nmf`; a
converged utterance is finished and leaves the batch; the random numbers come from the batch
context's per-utterance streams). The components and their E-steps are
:mod:`models.enhancement.components`.

The switch itself (its config, parameters and exact posterior given the emissions) is the pure
module :mod:`models.enhancement.switch_posterior`; its names are re-exported here.

Everything is batched over utterances (padded ``[B, T, F]`` with a frame mask), runs on the
tensors' device, and draws its random numbers from one generator per utterance
(:class:`models.enhancement.em.EMContext`), so padding never changes a result.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from benchmark.registry import Registry
from models.enhancement.components import (  # noqa: F401  (re-exported)
    Component, EStepResult, component_from_context, component_from_model, emission_scores, final_langevin,
    gaussian_entropy, langevin_estep, laplace_evidence, log_prior_density, mh_estep, particle_weights, posterior_precision,
)
from models.enhancement.em import EMAlgorithm, EMContext, FinalVariances, ItemResult, em_loop, run_em, wiener_gain
from models.enhancement.nmf import NMFState
from models.enhancement.samplers import Langevin, RandomWalkMH
from models.enhancement.switch_posterior import (  # noqa: F401  (the switch model, re-exported)
    AUDIO, EVIDENCE_KINDS, VISUAL, SwitchConfig, SwitchParams, forward_backward, mixture_posterior, switch_posterior,
)

log = logging.getLogger(__name__)


#: the algorithms usable with the composite models, by the spec's algorithm name: each maps its
#: config (``MCEMConfig``/``LDEMConfig``) to the shared sampler (:mod:`models.enhancement.samplers`)
SWITCH_ESTEPS: Registry = Registry("switching E-step")


def _config_from_params(cls: type, params: dict[str, Any] | None, where: str) -> Any:
    """Build ``cls`` from a params mapping; unknown keys are an error naming them."""
    params = dict(params or {})
    names = {f.name for f in cls.__dataclass_fields__.values()}  # type: ignore[attr-defined]
    unknown = sorted(set(params) - names)
    if unknown:
        raise ValueError(f"{where}: unknown parameter(s) {unknown}; known: {sorted(names)}")
    return cls(**params)


def sampler_for(estep: Any) -> RandomWalkMH | Langevin:
    """The shared sampler of the algorithm whose config ``estep`` is (:data:`SWITCH_ESTEPS`: by
    the config class of each registered algorithm)."""
    from models.enhancement.registry import ALGORITHMS

    for name in SWITCH_ESTEPS.names():
        if isinstance(estep, ALGORITHMS.get(name).config_cls):
            return SWITCH_ESTEPS.get(name)(estep)
    raise TypeError(f"no switching E-step for a {type(estep).__name__}; known algorithms: {', '.join(SWITCH_ESTEPS.names())}")


class SwitchingEM(EMAlgorithm):
    """The EM of a switch between K = 2 speech-prior components (0 = audio-only, 1 = audio-visual)
    with per-frame responsibilities ``q(m_t = k)``, run by :func:`models.enhancement.em.em_loop`.

    ``config``: the config of ``mcem`` (:class:`models.enhancement.mcem.MCEMConfig`) or ``ldem``
    (:class:`models.enhancement.ldem.LDEMConfig`), whose sampler each component's E-step uses
    (:func:`sampler_for`); ``switch``: the switch model; ``components``: given components (e.g.
    toys), else those of the composite's per-component contexts (:meth:`components`). State (per
    utterance, cut by :meth:`select`): the chains ``z_k [C, B, T, L_k]``, ``q(m) [B, T, 2]`` and the
    switch parameters. E-step (``docs/switching_em.md``): each component's samples, then ``q(m)``
    from the emissions with the current W, H, g, then (``switch.learn``) the switch parameters;
    the samples' weights ``q(m_t = k) / R_k`` go to the weighted M-step."""

    def __init__(self, config: Any, switch: SwitchConfig, *, name: str = "switching",
                 components: Optional[Sequence[Component]] = None) -> None:
        super().__init__(config)
        self.name = name
        self.switch = switch
        self.sampler = sampler_for(config)
        self.given: list[Component] = list(components or [])

    def components(self, ctx: EMContext) -> list[Component]:
        """The given components, or those of the composite's per-component contexts of ``ctx``
        (cut with it when utterances leave the batch, their decoder passes counted there)."""
        return self.given or [component_from_context(role, c) for role, c in ctx.components.items()]

    # -- state -----------------------------------------------------------------------------
    def init(self, ctx: EMContext) -> None:
        comps = self.components(ctx)
        if len(comps) != 2:
            raise ValueError(f"switching EM: expected 2 components (audio, audio-visual), got {len(comps)}")
        mh = isinstance(self.sampler, RandomWalkMH)
        C = 1 if mh else int(self.config.n_chains)
        eta = 0.0 if mh else self.sampler.eta
        dt = ctx.P.dtype
        self.zs = []
        for comp in comps:
            z0 = comp.z_init.to(ctx.device, dt).expand(C, *comp.z_init.shape).clone()
            if eta > 0:
                z0 = z0 + math.sqrt(eta) * ctx.randn((C,), (z0.shape[-1],))
            self.zs.append(z0)
        self.sp = SwitchParams.from_config(self.switch, ctx.B, ctx.device, dt)
        self.post = torch.exp(self.sp.log_init)[:, None, :].expand(ctx.B, ctx.T, 2) * ctx.maskf[..., None]  # the prior marginals
        self._wts: Optional[torch.Tensor] = None
        self._iter: dict[str, torch.Tensor] = {}
        self._final: dict[str, torch.Tensor] = {}
        self._frame: dict[str, torch.Tensor] = {}

    def select(self, rows: torch.Tensor) -> "SwitchingEM":
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.given = [c.select(rows) for c in self.given]
        new.zs = [z[:, rows] for z in self.zs]
        new.post = self.post[rows]
        new.sp = SwitchParams(self.sp.kind, self.sp.log_init[rows], None if self.sp.log_trans is None else self.sp.log_trans[rows])
        new._wts = None
        new._iter = {k: v[rows] for k, v in self._iter.items()}
        return new

    # -- E-steps ---------------------------------------------------------------------------
    def _samples(self, ctx: EMContext, st: NMFState, final: bool) -> tuple[torch.Tensor, list[int], torch.Tensor, torch.Tensor]:
        """Both components' samples with the current W, H, g: their variances ``[P, B, T, F]``,
        samples per component, MH acceptance ``[B]`` (NaN for Langevin) and the switch emissions
        ``L_t(k) [B, T, 2]`` (float64). Final: the longer MH chains / the Langevin chains' states."""
        X2, mask, g, WH = ctx.P, ctx.mask, st.g, st.noise_var()
        cfg, tempered = self.config, self.switch.latent_posterior == "tempered"
        laplace = not tempered and self.switch.evidence == "laplace"
        sig_all, n_per, acc, lps, evs = [], [], [], [], []
        for k, comp in enumerate(self.components(ctx)):
            resp = self.post[..., k] if tempered else ctx.maskf
            if isinstance(self.sampler, RandomWalkMH):
                steps, burn = (cfg.final_steps, cfg.final_burn_in) if final else (cfg.n_steps, cfg.burn_in)
                r = mh_estep(comp, self.zs[k], resp, X2, WH, g, mask, ctx, steps, burn, self.sampler)
                acc.append(r.acceptance)
            elif final:  # Langevin: the chains' current states, as published
                r = final_langevin(comp, self.zs[k])
            else:
                r = langevin_estep(comp, self.zs[k], resp, X2, WH, g, mask, ctx, self.sampler, cfg.prior_weight, cfg.tv)
            self.zs[k] = r.z
            sig_all.append(r.sig2)
            lps.append(r.log_prior)
            n_per.append(r.sig2.shape[0])
            if final and r.weights is not None and comp.name == "visual":  # the AV model's own fusion weights
                self._frame["av_component_weights_decoder"] = r.weights
            if laplace:
                evs.append(laplace_evidence(comp, r.z_mean, X2, WH, g, mask, newton_steps=self.switch.newton_steps))
        rate = torch.stack(acc).mean(0) if acc else torch.full((ctx.B,), float("nan"), device=ctx.device, dtype=X2.dtype)
        sig2 = torch.cat(sig_all, 0)
        emit = torch.stack(evs, -1) if laplace else emission_scores(
            X2, sig2, n_per, st.W, st.H, g, None if tempered else torch.cat(lps, 0))
        return sig2, n_per, rate, emit

    @torch.no_grad()
    def e_step(self, ctx: EMContext, st: NMFState, it: int) -> torch.Tensor:
        sig2, n_per, acc, emit = self._samples(ctx, st, final=False)
        post, pair, log_z = switch_posterior(emit, ctx.mask, self.sp)
        self.post = post.to(ctx.P.dtype)
        n_bins = (ctx.mask.sum(-1) * ctx.F).to(ctx.P.dtype)
        self._iter = {"free_energy": (-log_z / n_bins).to(ctx.P.dtype)}
        if isinstance(self.sampler, RandomWalkMH):
            self._iter["acceptance"] = acc
        if self.switch.learn:  # uses q(m) only: the same before or after the NMF M-step
            self.sp.update(self.post, None if pair is None else pair.to(ctx.P.dtype), ctx.mask)
        self._wts = particle_weights(self.post, n_per)
        return sig2

    def sample_weights(self) -> Optional[torch.Tensor]:
        return self._wts

    @torch.no_grad()
    def final_variances(self, ctx: EMContext, st: NMFState) -> FinalVariances:
        """Fresh (longer) chains, then ``q(m)`` with the final W, H, g; the Wiener filter weights
        each sample by ``q(m_t = k) / R_k``; ``q(m)`` is the reported ``weights_decoder``."""
        sig2, n_per, acc, emit = self._samples(ctx, st, final=True)
        post, _, _ = switch_posterior(emit, ctx.mask, self.sp)
        post = post.to(ctx.P.dtype)
        self._frame["switch_posterior"] = post
        self._final = {"switch_prior_av": torch.exp(self.sp.log_init[:, VISUAL])}
        if isinstance(self.sampler, RandomWalkMH):
            self._final["final_acceptance"] = acc
        if self.sp.log_trans is not None:
            self._final["switch_transition"] = torch.exp(self.sp.log_trans)
        return FinalVariances(sig2, particle_weights(post, n_per), post)

    def final_latents(self, ctx: EMContext, st: NMFState) -> torch.Tensor:  # pragma: no cover - not used
        raise NotImplementedError("the switching EM's final estimate is final_variances (two latent spaces)")

    def iteration_traces(self) -> dict[str, torch.Tensor]:
        return dict(self._iter)

    def final_traces(self) -> dict[str, torch.Tensor]:
        return dict(self._final)

    def final_frame_traces(self) -> dict[str, torch.Tensor]:
        return dict(self._frame)


@dataclass
class SwitchEMResult:
    """What :func:`run_switching_em` returns for a batch (all padded ``[B, T, ...]``)."""

    wiener_gain: torch.Tensor  # [B, T, F]  E_q[s] = gain * x
    switch_post: torch.Tensor  # [B, T, 2]  q(m_t = A), q(m_t = AV); zero on padding
    W: torch.Tensor
    H: torch.Tensor
    g: torch.Tensor
    cost: torch.Tensor  # [B, n_iter] expected IS cost per real TF bin after each M-step (NaN after a stop)
    free_energy: torch.Tensor  # [B, n_iter] -log Z(q(m)) per real TF bin with the iteration's samples (before the M-step)
    acceptance: torch.Tensor  # [B, n_iter] MH acceptance rate (NaN for Langevin / after a stop)
    final_acceptance: torch.Tensor  # [B] (NaN for Langevin)
    switch_log_init: torch.Tensor  # [B, 2]
    switch_log_trans: Optional[torch.Tensor]  # [B, 2, 2] (markov)
    component_weights: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


def run_switching_em(
    X2: torch.Tensor,
    mask: torch.Tensor,
    components: Sequence[Component],
    switch: SwitchConfig,
    estep: Any,
    seeds: Sequence[int],
    W0: torch.Tensor,
    H0: torch.Tensor,
    progress: bool = False,
) -> SwitchEMResult:
    """:class:`SwitchingEM` on given ``components`` (index 0 = audio-only, 1 = audio-visual) and
    tensors, without a :class:`models.enhancement.batch.Batch` (the toys of the tests): the same
    loop as :func:`models.enhancement.em.run_em`, the final estimate kept as tensors.

    ``X2 [B, T, F]`` noisy power, ``mask [B, T]`` (real frames first), ``seeds`` one per utterance
    (e.g. :func:`benchmark.seeding.derive_seed` of the item id; they seed the context's streams),
    ``W0 [B, F, K]``/``H0 [B, T, K]`` the NMF start (:func:`models.enhancement.nmf.init_nmf`), ``g``
    starts at 1. ``estep`` is the config of ``mcem`` or ``ldem`` (:class:`SwitchingEM`); its
    ``n_iter``, ``tol`` (per-utterance stop on ``|delta cost|``: the utterance is finished and
    leaves the batch) and ``update`` (which of W, H, g the M-step updates) apply. See
    ``docs/switching_em.md``."""
    if len(components) != 2:
        raise ValueError(f"run_switching_em: expected 2 components (audio, audio-visual), got {len(components)}")
    if X2.dim() != 3 or mask.shape != X2.shape[:2]:
        raise ValueError(f"run_switching_em: expected power [B, T, F] and mask [B, T]; got {tuple(X2.shape)} and {tuple(mask.shape)}")
    mask = mask.bool()
    lengths = mask.sum(-1).tolist()
    if min(lengths) < 1:
        raise ValueError("run_switching_em: an utterance in the batch has no real frame")
    if not all(bool(mask[b, :n].all()) for b, n in enumerate(lengths)):
        raise ValueError("run_switching_em: the frame mask must have real frames first, then padding")
    ctx = EMContext.from_tensors(X2, mask, seeds)
    B, T, F = X2.shape
    dev, dt = X2.device, X2.dtype
    st = NMFState(W0.to(dev, dt).clone(), H0.to(dev, dt).clone(), torch.ones(B, T, device=dev, dtype=dt))
    algo = SwitchingEM(estep, switch, name=f"switching ({switch.kind})", components=components)
    n_iter = int(estep.n_iter)
    nan = lambda *shape: torch.full(shape, float("nan"), device=dev, dtype=dt)  # noqa: E731
    res = SwitchEMResult(torch.zeros(B, T, F, device=dev, dtype=dt), torch.zeros(B, T, 2, device=dev, dtype=dt),
                         W0.to(dev, dt).clone(), H0.to(dev, dt).clone(), st.g.clone(), nan(B, n_iter), nan(B, n_iter),
                         nan(B, n_iter), nan(B), torch.zeros(B, 2, device=dev, dtype=dt),
                         torch.zeros(B, 2, 2, device=dev, dtype=dt) if switch.kind == "markov" else None)
    av_w: list[Optional[torch.Tensor]] = [None] * B

    def finish(a: SwitchingEM, c: EMContext, s: NMFState, rows: list[int], costs: torch.Tensor,
               iter_traces: dict[str, torch.Tensor], n_done: list[int]) -> None:
        fin = a.final_variances(c, s)
        gain = wiener_gain(fin.Vs, s.g, s.noise_var(), fin.weights) * c.maskf[..., None]
        idx = torch.tensor(rows, device=dev)
        res.wiener_gain[idx], res.switch_post[idx] = gain, fin.decoder_weights
        res.W[idx], res.H[idx], res.g[idx] = s.W, s.H, s.g
        res.switch_log_init[idx] = a.sp.log_init
        if res.switch_log_trans is not None:
            res.switch_log_trans[idx] = a.sp.log_trans
        if "final_acceptance" in a._final:
            res.final_acceptance[idx] = a._final["final_acceptance"]
        for r in rows:
            nd = n_done[r]
            res.cost[r, :nd] = costs[:nd, r]
            for key, buf in (("free_energy", res.free_energy), ("acceptance", res.acceptance)):
                if key in iter_traces:
                    buf[r, :nd] = iter_traces[key][:nd, r].to(dt)
        w = a._frame.get("av_component_weights_decoder")
        for j, r in enumerate(rows):
            av_w[r] = None if w is None else w[j]

    em_loop(algo, ctx, st, finish, progress=progress)
    if all(w is not None for w in av_w):
        res.component_weights = {"visual": {"decoder": torch.stack(av_w)}}
    return res


SWITCH_ESTEPS.register("mcem", lambda c: RandomWalkMH(c.proposal_var),
                       doc="Monte Carlo EM: random-walk MH on each component's latent posterior")
SWITCH_ESTEPS.register("ldem", lambda c: Langevin(c.lr, c.n_steps, c.eta),
                       doc="Langevin EM: unadjusted Langevin chains on each component's latent posterior")


def estep_config(algorithm: str, params: dict[str, Any] | None = None) -> Any:
    """The config of the spec algorithm ``algorithm`` (``mcem``/``ldem``: the algorithm's own
    config class, so ``enhance.algorithm_params`` apply unchanged) built from ``params``."""
    if algorithm not in SWITCH_ESTEPS:
        raise KeyError(
            f"algorithm {algorithm!r} has no switching E-step for the mixture/switching VAEs; "
            f"known: {', '.join(SWITCH_ESTEPS.names())}"
        )
    from models.enhancement.registry import ALGORITHMS

    cls = ALGORITHMS.get(algorithm).config_cls
    return _config_from_params(cls, params, f"algorithm {algorithm!r} (switching E-step)")


# ----------------------------------------------------------------------------------------
# the batch entry point used by the composite models' custom_enhance
# ----------------------------------------------------------------------------------------
def enhance_batch(
    model: Any,
    batch: Any,
    algorithm: str,
    config: Any = None,
    *,
    rank: int = 10,
    seed: int = 0,
    stft_cfg: Any = None,
    progress: bool = False,
    **_ignored: Any,
) -> list[ItemResult]:
    """Enhance a :class:`models.enhancement.batch.Batch` with a composite model (``model.audio_model``,
    ``model.av_model``, ``model.switch_config()``) and the switching EM of ``algorithm``, through
    :func:`models.enhancement.em.run_em` (one context per component; NMF start and per-utterance
    streams seeded from the ``pair_id`` as for every model).

    ``config``: the algorithm's config object (``MCEMConfig``/``LDEMConfig``), a params mapping,
    or None for the published defaults. Returns one :class:`models.enhancement.em.ItemResult` per
    utterance with traces ``cost``, ``free_energy``, ``n_iter``, ``frame_rate``, ``gain_g``,
    ``decoder_calls``, ``acceptance``/``final_acceptance`` (MCEM), ``weights_decoder`` =
    ``switch_posterior`` ``[T, 2]`` (column 1 = P(m_t = AV), the visual reliability weight),
    ``switch_prior_av``, ``switch_transition`` (switching VAE) and, when the AV component has
    fusion weights, ``av_component_weights_decoder``.
    """
    from models.spectral import STFTConfig

    if config is None or isinstance(config, dict):
        config = estep_config(algorithm, config)
    elif algorithm not in SWITCH_ESTEPS:
        raise KeyError(f"algorithm {algorithm!r} has no switching E-step; known: {', '.join(SWITCH_ESTEPS.names())}")
    if batch.lips is None:
        raise ValueError(f"{model.name}: the audio-visual component needs lip frames (items {batch.item_ids})")
    algo = SwitchingEM(config, model.switch_config(), name=f"{model.name}/{algorithm}")
    return run_em(algo, model, batch, rank=rank, seed=seed, stft_cfg=stft_cfg or STFTConfig(), progress=progress)
