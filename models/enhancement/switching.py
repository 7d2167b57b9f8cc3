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

The switch itself (its config, parameters and exact posterior given the emissions) is the pure
module :mod:`models.enhancement.switch_posterior`; its names are re-exported here.

Everything is batched over utterances (padded ``[B, T, F]`` with a frame mask), runs on the
tensors' device, and draws its random numbers from one generator per utterance, so padding
never changes a result.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch

from benchmark.registry import Registry
from benchmark.seeding import derive_seed
from models.enhancement.em import converged, reduce_weights, wiener_gain
from models.enhancement.ldem import total_variation
from models.enhancement.batch import per_item_randn
from models.enhancement.nmf import EPS, noise_var
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


# ----------------------------------------------------------------------------------------
# components and per-utterance randomness
# ----------------------------------------------------------------------------------------
@dataclass
class Component:
    """One speech model inside the switch, with what the EM needs from it for one batch.

    ``decode(z) -> logvar [..., B, T, F]`` for ``z [..., B, T, L]``; ``prior_mu``/``prior_logvar``
    and ``z_init`` are ``[B, T, L]``; ``decode_weights(z) -> (logvar, weights [B, T, 2] | None)``
    the same pass with the model's decoder fusion weights (None: a component without them).
    """

    name: str
    decode: Callable[[torch.Tensor], torch.Tensor]
    prior_mu: torch.Tensor
    prior_logvar: torch.Tensor
    z_init: torch.Tensor
    decode_weights: Optional[Callable[[torch.Tensor], tuple[torch.Tensor, Optional[torch.Tensor]]]] = None

    def decode_with_weights(self, z: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``(logvar [..., B, T, F], decoder fusion weights [B, T, 2] or None)`` of one decoder pass."""
        if self.decode_weights is None:
            return self.decode(z), None
        return self.decode_weights(z)


def component_from_model(model: Any, power: torch.Tensor, lips: Optional[torch.Tensor], mask: torch.Tensor, name: str) -> Component:
    """A :class:`Component` from a :class:`models.base.SpeechModel`: visual features once, the
    prior, and the encoder mean on the noisy power as the chains' starting point (as published)."""
    with torch.no_grad():
        vfeat = model.visual_features(lips, mask) if getattr(model, "is_audio_visual", False) else None
        mu, _ = model.encode(power, vfeat, mask)
        pmu, plv = model.prior(vfeat, mask)
    return Component(
        name=name,
        decode=lambda z, _m=model, _v=vfeat, _k=mask: _m.decode(z, _v, _k),
        prior_mu=pmu.detach(),
        prior_logvar=plv.detach(),
        z_init=mu.detach(),
        decode_weights=lambda z, _m=model, _v=vfeat, _k=mask: tuple(_m.decode(z, _v, _k, return_weights=True)),
    )


class UttRandom:
    """Random numbers drawn per utterance (one generator each, seeded from its id), padded to the
    batch length (:func:`models.enhancement.batch.per_item_randn`): an utterance gets the same
    numbers alone or in any batch."""

    def __init__(self, seeds: Sequence[int], lengths: Sequence[int], device: torch.device | str, dtype: torch.dtype) -> None:
        self.lengths = [int(n) for n in lengths]
        self.T = max(self.lengths) if self.lengths else 0
        self.device = torch.device(device)
        self.dtype = dtype
        gen_dev = "cuda" if self.device.type == "cuda" else "cpu"
        self.gens = []
        for s in seeds:
            gen = torch.Generator(device=gen_dev)
            gen.manual_seed(int(s))
            self.gens.append(gen)

    def randn(self, lead: tuple[int, ...], tail: tuple[int, ...] = ()) -> torch.Tensor:
        return per_item_randn(self.gens, self.lengths, self.T, leading=lead, tail=tail, device=self.device, dtype=self.dtype)

    def rand(self, lead: tuple[int, ...], tail: tuple[int, ...] = ()) -> torch.Tensor:
        return per_item_randn(self.gens, self.lengths, self.T, leading=lead, tail=tail, device=self.device, dtype=self.dtype, uniform=True)


# ----------------------------------------------------------------------------------------
# weighted IS-NMF M-step and the costs
# ----------------------------------------------------------------------------------------
def expected_cost(X2: torch.Tensor, sig2: torch.Tensor, wts: torch.Tensor, W: torch.Tensor, H: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Responsibility-weighted expected IS cost per utterance ``[B]``:
    ``sum_{t,f,p} w_{p,t} (log Vx_p + X2 / Vx_p)`` with ``Vx_p = g sig2_p + WH``
    (= minus the expected complete-data log-likelihood up to ``F log pi`` per frame).
    ``sig2 [P, B, T, F]``, ``wts [P, B, T]`` (zero on padding)."""
    WH = noise_var(W, H)
    tot = X2.new_zeros(X2.shape[0])
    for p in range(sig2.shape[0]):
        Vx = (g[..., None] * sig2[p] + WH).clamp_min(EPS)
        tot = tot + (wts[p] * (Vx.log() + X2 / Vx).sum(-1)).sum(-1)
    return tot


def _weighted_sums(
    X2: torch.Tensor, sig2: torch.Tensor, wts: torch.Tensor, WH: torch.Tensor, g: torch.Tensor, need_g: bool
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """``sum_p w_p X2 Vx_p^-2``, ``sum_p w_p Vx_p^-1`` (and for g the same times ``sig2_p``),
    each ``[B, T, F]``; loops over the samples so memory stays ``[B, T, F]``."""
    a = torch.zeros_like(WH)
    c = torch.zeros_like(WH)
    gn = torch.zeros_like(WH) if need_g else None
    gd = torch.zeros_like(WH) if need_g else None
    gg = g[..., None]
    for p in range(sig2.shape[0]):
        w = wts[p][..., None]
        inv = (gg * sig2[p] + WH).clamp_min(EPS).reciprocal()
        wi = w * inv
        c += wi
        a += wi * inv
        if need_g:
            gd += wi * sig2[p]
            gn += wi * inv * sig2[p]
    a = a * X2
    if need_g:
        gn = gn * X2
    return a, c, gn, gd


def update_nmf_gain(
    X2: torch.Tensor, sig2: torch.Tensor, wts: torch.Tensor, W: torch.Tensor, H: torch.Tensor, g: torch.Tensor,
    mask: torch.Tensor, update: str = "WHg",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One round of multiplicative updates W -> H -> g (the published order, as in
    :func:`models.enhancement.nmf.m_step`) on the weighted expected IS cost of
    :func:`expected_cost`; each step never increases it (MM with exponent 1/2, termwise).

    This is the per-sample, per-frame weighted form of the MCEM updates (uniform weights ``1/R``
    give those back). Frames with zero weight (padding, or an utterance that stopped) keep their
    H and g; ``update`` names the factors to update (a subset of "WHg").
    """
    live = wts.sum(0) > 0  # [B, T]
    if "W" in update:
        a, c, _, _ = _weighted_sums(X2, sig2, wts, noise_var(W, H), g, False)
        num = a.transpose(-1, -2) @ H
        den = c.transpose(-1, -2) @ H
        W = (W * torch.sqrt(num / den.clamp_min(EPS))).clamp_min(EPS)
    if "H" in update:
        a, c, _, _ = _weighted_sums(X2, sig2, wts, noise_var(W, H), g, False)
        new = (H * torch.sqrt((a @ W) / (c @ W).clamp_min(EPS))).clamp_min(EPS)
        H = torch.where(live[..., None], new, H)
    if "g" in update:
        _, _, gn, gd = _weighted_sums(X2, sig2, wts, noise_var(W, H), g, True)
        new = (g * torch.sqrt(gn.sum(-1) / gd.sum(-1).clamp_min(EPS))).clamp_min(EPS)
        g = torch.where(live, new, g)
    return W, H, g


def emission_scores(X2: torch.Tensor, sig2: torch.Tensor, n_per_comp: Sequence[int], W: torch.Tensor, H: torch.Tensor, g: torch.Tensor,
                    log_prior: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``L_t(k) = mean_r -sum_f (log Vx_{k,r} + X2 / Vx_{k,r})`` (the ``-F log pi`` constant
    dropped) for the samples of each component, stacked ``[B, T, K]`` in float64; with
    ``log_prior [P, B, T]`` the sample's ``log p_k(z_r)`` is added (the per-frame log joint:
    the ``log_joint`` evidence of the conditional variant, without the posterior entropy)."""
    WH = noise_var(W, H)
    out, i = [], 0
    for n in n_per_comp:
        acc = X2.new_zeros(X2.shape[:2], dtype=torch.float64)
        for p in range(i, i + n):
            Vx = (g[..., None] * sig2[p] + WH).clamp_min(EPS)
            acc = acc - (Vx.log() + X2 / Vx).sum(-1, dtype=torch.float64)
            if log_prior is not None:
                acc = acc + log_prior[p].double()
        out.append(acc / n)
        i += n
    return torch.stack(out, dim=-1)


def posterior_precision(comp: "Component", z: torch.Tensor, WH: torch.Tensor, g: torch.Tensor,
                        rel_step: float = 0.05, chunk: int = 8, X2: Optional[torch.Tensor] = None,
                        ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Gauss-Newton precision ``Lambda [B, T, L, L]`` (float64) of component ``comp``'s per-frame
    posterior ``p(z_t | x_t, m_t = k)`` at ``z [B, T, L]``, and the decoder log-variance
    ``d(z) [B, T, F]``::

        Lambda = J^T diag(a^2) J + diag(exp(-prior_logvar)),   a_f = g sigma^2_f / Vx_f

    ``J^T diag(a^2) J`` is the Fisher information of the complex Gaussian likelihood in ``z``
    (positive semi-definite, unlike the observed Hessian); the prior precision is the
    component's own prior (N(0, I), or the visual prior p(z | v) of an AV-CVAE).
    ``J = d log sigma^2 / d z`` by central differences with a step of ``rel_step`` times the prior
    std of each latent dimension (so the result does not depend on the scale of the latent; the
    step is large enough that float32 decoders' rounding stays small against it); ``2 L`` extra
    decoded samples, in batched calls of ``2 chunk``. For a decoder with temporal
    context the perturbation moves every frame's latent at once, so ``J`` also picks up
    cross-frame terms (an approximation; the suite's decoders are frame-wise)."""
    L = z.shape[-1]
    with torch.no_grad():
        h = rel_step * torch.exp(0.5 * comp.prior_logvar.to(z.dtype)).expand_as(z)  # [B, T, L]
        d0 = comp.decode(z)
        gs = g[..., None] * torch.exp(d0)
        a2 = (gs / (gs + WH).clamp_min(EPS)).double() ** 2
        Js = []
        for s in range(0, L, chunk):
            idx = torch.arange(s, min(L, s + chunk), device=z.device)
            E = torch.nn.functional.one_hot(idx, L).to(z.dtype)[:, None, None, :]  # [n, 1, 1, L]
            hs = h.movedim(-1, 0)[idx][..., None]  # [n, B, T, 1]
            zp, zm = z[None] + E * hs, z[None] - E * hs
            step = (zp - zm).movedim(-1, 0)[idx, torch.arange(len(idx))][..., None]  # the step as represented
            dpm = comp.decode(torch.cat([zp, zm], 0))
            Js.append((dpm[: len(idx)] - dpm[len(idx):]).double() / step.double())
        J = torch.cat(Js, 0)  # [L, B, T, F]
        lam = torch.einsum("ibtf,jbtf->btij", J * a2, J)
        prec = torch.exp(-comp.prior_logvar.double()).expand(*z.shape)
        lam = lam + torch.diag_embed(prec)
        grad = None
        if X2 is not None:  # gradient of the negative log joint: J^T [a (1 - |x|^2 / Vx)] + prior precision (z - mu)
            a = a2.sqrt()
            r = a * (1.0 - X2.double() * a / gs.double().clamp_min(EPS))
            grad = torch.einsum("ibtf,btf->bti", J, r) + prec * (z.double() - comp.prior_mu.double())
    return lam, d0, grad


def gaussian_entropy(lam: torch.Tensor) -> torch.Tensor:
    """Entropy ``L/2 (1 + log 2 pi) - 1/2 log det Lambda`` of ``N(., Lambda^-1)``, ``lam [..., L, L]``."""
    L = lam.shape[-1]
    chol, info = torch.linalg.cholesky_ex(lam)
    logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    if bool((info != 0).any()):  # numerically indefinite (not expected: Lambda >= the prior precision)
        logdet = torch.where(info == 0, logdet, torch.linalg.slogdet(lam)[1])
    return 0.5 * L * (1.0 + math.log(2.0 * math.pi)) - 0.5 * logdet


def laplace_evidence(comp: "Component", z: torch.Tensor, X2: torch.Tensor, WH: torch.Tensor, g: torch.Tensor,
                     mask: torch.Tensor, rel_step: float = 0.05, newton_steps: int = 2) -> torch.Tensor:
    """Laplace estimate of the frame evidence ``log p(x_t | m_t = k)`` ``[B, T]`` (float64, 0 on
    padding; the ``-F log pi`` constant dropped as in :func:`emission_scores`)::

        log p(x_t | z*) + log p_k(z*) + H[N(z*, Lambda^-1)] - L/2
          = log p(x_t | z*) + log p_k(z*) + L/2 log 2 pi - 1/2 log det Lambda(z*)

    i.e. the log joint plus the posterior entropy (``- L/2``: the mean log joint under a
    Gaussian posterior is ``L/2`` below its value at the mode), with ``Lambda`` from
    :func:`posterior_precision`. ``z* `` is the mode estimate: ``z [B, T, L]`` (the mean of the
    component's posterior samples) moved by ``newton_steps`` Gauss-Newton steps, each kept only
    on the frames where it raises the log joint, so the score depends on the samplers' mixing
    as little as possible. Without the entropy a component with a narrower posterior wins
    frames it explains no better (``docs/switching_em.md``, section 2a'')."""

    def log_joint(zz: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        Vx = (g[..., None] * torch.exp(d) + WH).clamp_min(EPS)
        return -(Vx.log() + X2 / Vx).sum(-1, dtype=torch.float64) + log_prior_density(comp, zz).double()

    with torch.no_grad():
        lam, d0, grad = posterior_precision(comp, z, WH, g, rel_step, X2=X2)
        lj = log_joint(z, d0)
        for _ in range(newton_steps):
            z1 = z - torch.linalg.solve(lam, grad.unsqueeze(-1)).squeeze(-1).to(z.dtype)
            lam1, d1, grad1 = posterior_precision(comp, z1, WH, g, rel_step, X2=X2)
            lj1 = torch.nan_to_num(log_joint(z1, d1), nan=-math.inf)
            up = lj1 > lj
            z = torch.where(up[..., None], z1, z)
            lam = torch.where(up[..., None, None], lam1, lam)
            grad = torch.where(up[..., None], grad1, grad)
            lj = torch.where(up, lj1, lj)
        ev = lj + gaussian_entropy(lam) - 0.5 * z.shape[-1]
    return torch.where(mask.bool(), ev, torch.zeros((), dtype=ev.dtype, device=ev.device))


def particle_weights(post: torch.Tensor, n_per_comp: Sequence[int]) -> torch.Tensor:
    """``w_{p,t} = q(m_t = k(p)) / R_k`` ``[P, B, T]``."""
    return torch.cat([post[None, ..., k].expand(n, -1, -1) / n for k, n in enumerate(n_per_comp)], dim=0)


# ----------------------------------------------------------------------------------------
# E-steps on each component's tempered posterior
# ----------------------------------------------------------------------------------------
def frame_energy(
    comp: Component, z: torch.Tensor, resp: torch.Tensor, X2: torch.Tensor, WH: torch.Tensor, g: torch.Tensor, mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of the latent target's energy per frame ``[..., B, T]`` (0 on padding):
    ``r_t sum_f (log Vx + X2/Vx)`` and ``sum_l (z - mu)^2 / var``; ``U = lik + prior_weight * quad``
    (``prior_weight = 1/2``: the exact negative log posterior, tempered by ``r_t``)."""
    sig2 = torch.exp(comp.decode(z))
    Vx = (g[..., None] * sig2 + WH).clamp_min(EPS)
    lik = (Vx.log() + X2 / Vx).sum(-1)
    quad = ((z - comp.prior_mu) ** 2 * torch.exp(-comp.prior_logvar)).sum(-1)
    return resp * lik * mask, quad * mask


def log_prior_density(comp: Component, z: torch.Tensor) -> torch.Tensor:
    """``log N(z; mu, diag(exp(logvar)))`` per frame ``[..., B, T]`` (normalised, so components
    with different latent sizes or priors compare)."""
    lv = comp.prior_logvar
    return -0.5 * (((z - comp.prior_mu) ** 2) * torch.exp(-lv) + lv + math.log(2 * math.pi)).sum(-1)


@dataclass
class EStepResult:
    """Samples of one component: their speech variances, the chains' state and MH acceptance."""

    sig2: torch.Tensor  # [R, B, T, F]
    z: torch.Tensor  # [C, B, T, L] chain state to warm-start the next E-step
    acceptance: Optional[torch.Tensor] = None  # [B] MH acceptance rate over the real frames
    log_prior: Optional[torch.Tensor] = None  # [R, B, T] log p_k(z_r) of the samples
    z_mean: Optional[torch.Tensor] = None  # [B, T, L] mean of the samples' latents (Laplace point)
    weights: Optional[torch.Tensor] = None  # [B, T, 2] the decoder fusion weights of the samples' pass


def mh_estep(
    comp: Component, z: torch.Tensor, resp: torch.Tensor, X2: torch.Tensor, WH: torch.Tensor, g: torch.Tensor,
    mask: torch.Tensor, rnd: UttRandom, n_steps: int, burn_in: int, sampler: RandomWalkMH,
) -> EStepResult:
    """Random-walk Metropolis-Hastings per frame (:class:`models.enhancement.samplers.RandomWalkMH`,
    the sampler of ``mcem``), ``C`` chains ``z [C, B, T, L]`` warm-started; the
    ``n_steps - burn_in`` last states of every chain are the samples, decoded in one batched call."""
    C = z.shape[0]
    with torch.no_grad():
        energy = lambda zz: frame_energy(comp, zz, resp, X2, WH, g, mask)  # noqa: E731
        res = sampler.run(z, energy(z), energy, mask, rnd.randn, rnd.rand, n_steps, burn_in)
        kept = res.kept.reshape(-1, *res.kept.shape[2:])  # [R * C, B, T, L], step-major
        d, w = comp.decode_with_weights(kept)
        rate = RandomWalkMH.rate(res.accepted, mask, n_steps)
        return EStepResult(torch.exp(d), res.z, rate, log_prior_density(comp, kept), kept.mean(0), reduce_weights(w))


def langevin_estep(
    comp: Component, z: torch.Tensor, resp: torch.Tensor, X2: torch.Tensor, WH: torch.Tensor, g: torch.Tensor,
    mask: torch.Tensor, rnd: UttRandom, sampler: Langevin, prior_weight: float = 0.5, tv: float = 0.0,
) -> EStepResult:
    """Unadjusted Langevin (:class:`models.enhancement.samplers.Langevin`, the sampler of ``ldem``)
    on ``C`` parallel chains ``z [C, B, T, L]`` on ``U = lik + prior_weight quad`` (plus the
    optional ``tv sum_t |z_t - z_{t-1}|`` term of av-dkf's LDEM), then its ``eta`` kick; the chains'
    states are the samples (as in the published LDEM)."""

    def grad(zc: torch.Tensor, _step: int) -> torch.Tensor:
        with torch.enable_grad():
            zz = zc.detach().requires_grad_(True)
            lik, quad = frame_energy(comp, zz, resp, X2, WH, g, mask)
            U = (lik + prior_weight * quad).sum()
            if tv > 0:
                U = U + tv * total_variation(zz, mask)
            (gr,) = torch.autograd.grad(U, zz)
        return gr

    z = sampler.run(z.detach(), grad, rnd.randn).detach()
    return final_langevin(comp, z)


def final_langevin(comp: Component, z: torch.Tensor) -> EStepResult:
    """The samples of Langevin chains ``z [C, B, T, L]``: the chains' states, decoded."""
    with torch.no_grad():
        d, w = comp.decode_with_weights(z)
    return EStepResult(torch.exp(d), z, None, log_prior_density(comp, z), z.mean(0), reduce_weights(w))


# ----------------------------------------------------------------------------------------
# the EM loop
# ----------------------------------------------------------------------------------------
@dataclass
class SwitchEMResult:
    """What the switching EM returns for a batch (all padded ``[B, T, ...]``)."""

    wiener_gain: torch.Tensor  # [B, T, F]  E_q[s] = gain * x
    switch_post: torch.Tensor  # [B, T, 2]  q(m_t = A), q(m_t = AV); zero on padding
    W: torch.Tensor
    H: torch.Tensor
    g: torch.Tensor
    cost: torch.Tensor  # [B, n_iter] expected IS cost per real TF bin after each M-step (NaN after a stop)
    free_energy: torch.Tensor  # [B, n_iter] -log Z(q(m)) per real TF bin with the iteration's samples (before the M-step)
    acceptance: torch.Tensor  # [B, n_iter] MH acceptance rate (NaN for Langevin / after a stop)
    final_acceptance: torch.Tensor  # [B]
    switch_log_init: torch.Tensor  # [B, 2]
    switch_log_trans: Optional[torch.Tensor]  # [B, 2, 2] (markov)
    component_weights: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


def sampler_for(estep: Any) -> RandomWalkMH | Langevin:
    """The shared sampler of the algorithm whose config ``estep`` is (:data:`SWITCH_ESTEPS`: by
    the config class of each registered algorithm)."""
    from models.enhancement.registry import ALGORITHMS

    for name in SWITCH_ESTEPS.names():
        if isinstance(estep, ALGORITHMS.get(name).config_cls):
            return SWITCH_ESTEPS.get(name)(estep)
    raise TypeError(f"no switching E-step for a {type(estep).__name__}; known algorithms: {', '.join(SWITCH_ESTEPS.names())}")


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
    """Variational EM with a switch between ``components`` (index 0 = audio-only, 1 = audio-visual).

    ``X2 [B, T, F]`` noisy power, ``mask [B, T]`` (real frames first), ``seeds`` one per utterance
    (e.g. :func:`benchmark.seeding.derive_seed` of the item id), ``W0 [B, F, K]``/``H0 [B, T, K]``
    the NMF start (:func:`models.enhancement.nmf.init_nmf`). ``estep`` is the config of the
    ``mcem`` algorithm (:class:`models.enhancement.mcem.MCEMConfig`: ``proposal_var, n_steps,
    burn_in, final_steps, final_burn_in``; one chain per frame) or of ``ldem``
    (:class:`models.enhancement.ldem.LDEMConfig`: ``n_chains, lr, n_steps, eta, tv,
    prior_weight``); the sampler is the one those algorithms use (:func:`sampler_for`). Both
    give ``n_iter``, ``tol`` (per-utterance stop on ``|delta cost|``, None: never) and ``update``
    (which of W, H, g the M-step updates). See ``docs/switching_em.md``.
    """
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
    sampler = sampler_for(estep)
    mh = isinstance(sampler, RandomWalkMH)
    n_iter = int(estep.n_iter)
    tol, update = estep.tol, estep.update
    C = 1 if mh else int(estep.n_chains)
    B, T, F = X2.shape
    dev, dt = X2.device, X2.dtype
    X2 = X2 * mask[..., None]
    rnd = UttRandom(seeds, lengths, dev, dt)
    W, H = W0.to(dev, dt).clone(), H0.to(dev, dt).clone()
    g = torch.ones(B, T, device=dev, dtype=dt)
    sp = SwitchParams.from_config(switch, B, dev, dt)
    tempered = switch.latent_posterior == "tempered"
    n_bins = (mask.sum(-1) * F).to(dt)

    eta = 0.0 if mh else sampler.eta
    zs = []
    for comp in components:
        z0 = comp.z_init.to(dev, dt).expand(C, *comp.z_init.shape).clone()
        if eta > 0:
            z0 = z0 + math.sqrt(eta) * rnd.randn((C,), (z0.shape[-1],))
        zs.append(z0)
    # start: q(m) = the prior marginals
    post = torch.exp(sp.log_init)[:, None, :].expand(B, T, 2) * mask[..., None]
    active = torch.ones(B, dtype=torch.bool, device=dev)
    nan = torch.full((B,), float("nan"), device=dev, dtype=dt)
    costs, fes, accs = [], [], []
    prev_cost: Optional[torch.Tensor] = None

    laplace = not tempered and switch.evidence == "laplace"
    comp_w: dict[str, dict[str, torch.Tensor]] = {}  # each component's fusion weights on the final samples

    def run_estep(it: int, fmask: torch.Tensor) -> tuple[torch.Tensor, list[int], torch.Tensor, torch.Tensor]:
        """E-step ``it`` (-1: the final estimate) of both components on the frames ``fmask``:
        the samples' variances ``[P, B, T, F]``, samples per component, MH acceptance ``[B]`` and
        the switch emissions ``L_t(k) [B, T, 2]`` (float64) with the current W, H, g."""
        WH = noise_var(W, H)
        final = it < 0
        sig_all, n_per, acc, lps, evs = [], [], [], [], []
        for k, comp in enumerate(components):
            resp = post[..., k] if tempered else fmask.to(dt)
            if mh:
                steps = estep.final_steps if final else estep.n_steps
                burn = estep.final_burn_in if final else estep.burn_in
                r = mh_estep(comp, zs[k], resp, X2, WH, g, fmask, rnd, steps, burn, sampler)
                acc.append(r.acceptance)
            elif final:  # Langevin: the chains' current states, as published
                r = final_langevin(comp, zs[k])
            else:
                r = langevin_estep(comp, zs[k], resp, X2, WH, g, fmask, rnd, sampler, estep.prior_weight, estep.tv)
            zs[k] = r.z
            sig_all.append(r.sig2)
            lps.append(r.log_prior)
            n_per.append(r.sig2.shape[0])
            if final and r.weights is not None:  # the fusion weights of the decoder pass of the samples
                comp_w[comp.name] = {"decoder": r.weights.detach()}
            if laplace:
                evs.append(laplace_evidence(comp, r.z_mean, X2, WH, g, fmask))
        rate = torch.stack(acc).mean(0) if acc else nan.clone()
        sig2 = torch.cat(sig_all, 0)
        if laplace:
            emit = torch.stack(evs, dim=-1)
        else:
            emit = emission_scores(X2, sig2, n_per, W, H, g, None if tempered else torch.cat(lps, 0))
        return sig2, n_per, rate, emit

    iters: Any = range(n_iter)
    if progress:
        from tqdm.auto import tqdm

        iters = tqdm(iters, desc=f"switching EM ({switch.kind}, {type(sampler).__name__})", leave=False)
    with torch.no_grad():
        for it in iters:
            fmask = mask & active[:, None]
            sig2, n_per, acc, emit = run_estep(it, fmask)
            # E-step of the switch with the new samples (stopped utterances keep theirs)
            new_post, pair, log_z = switch_posterior(emit, mask, sp)
            post = torch.where(active[:, None, None], new_post.to(dt), post)
            fes.append(torch.where(active, (-log_z / n_bins).to(dt), nan))
            # M-step (zero weights freeze the stopped utterances' H and g; W is restored below)
            wts = particle_weights(post, n_per) * active[None, :, None]
            W_new, H, g = update_nmf_gain(X2, sig2, wts, W, H, g, mask, update=update)
            W = torch.where(active[:, None, None], W_new, W)
            if switch.learn:
                old = (sp.log_init.clone(), None if sp.log_trans is None else sp.log_trans.clone())
                sp.update(post, None if pair is None else pair.to(dt), mask)
                sp.log_init = torch.where(active[:, None], sp.log_init, old[0])
                if old[1] is not None:
                    sp.log_trans = torch.where(active[:, None, None], sp.log_trans, old[1])
            c = expected_cost(X2, sig2, particle_weights(post, n_per), W, H, g) / n_bins
            costs.append(torch.where(active, c, nan))
            accs.append(torch.where(active, acc, nan))
            if tol is not None:
                active = active & ~converged(c, prev_cost, tol)
                prev_cost = c
                if not bool(active.any()):
                    break
        # final estimate: fresh (longer) chains for every utterance, then q(m), then the filter
        sig2, n_per, final_acc, emit = run_estep(-1, mask)
        post, pair, _ = switch_posterior(emit, mask, sp)
        post = post.to(dt)
        gain = wiener_gain(sig2, g, noise_var(W, H), particle_weights(post, n_per))
    return SwitchEMResult(
        wiener_gain=gain * mask[..., None], switch_post=post, W=W, H=H, g=g,
        cost=torch.stack(costs, -1), free_energy=torch.stack(fes, -1), acceptance=torch.stack(accs, -1),
        final_acceptance=final_acc, switch_log_init=sp.log_init, switch_log_trans=sp.log_trans,
        component_weights=comp_w,
    )


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
) -> list:
    """Enhance a :class:`models.enhancement.batch.Batch` with a composite model (``model.audio_model``,
    ``model.av_model``, ``model.switch_config()``) and the switching EM of ``algorithm``.

    ``config``: the algorithm's config object (``MCEMConfig``/``LDEMConfig``), a params mapping,
    or None for the published defaults. Returns one :class:`models.enhancement.em.ItemResult` per
    utterance with traces ``cost``, ``free_energy``, ``n_iter``, ``frame_rate``, ``gain_g``,
    ``acceptance``/``final_acceptance`` (MCEM), ``weights_decoder`` = ``switch_posterior``
    ``[T, 2]`` (column 1 = P(m_t = AV), the visual reliability weight) and, when the AV
    component has fusion weights, ``av_component_weights_decoder``.
    """
    import numpy as np

    from models.enhancement.em import ItemResult
    from models.enhancement.nmf import init_nmf
    from models.spectral import STFTConfig, istft

    stft_cfg = stft_cfg or STFTConfig()
    if config is None or isinstance(config, dict):
        config = estep_config(algorithm, config)
    elif algorithm not in SWITCH_ESTEPS:
        raise KeyError(f"algorithm {algorithm!r} has no switching E-step; known: {', '.join(SWITCH_ESTEPS.names())}")
    P, mask = batch.power, batch.mask
    if batch.lips is None:
        raise ValueError(f"{model.name}: the audio-visual component needs lip frames (items {batch.item_ids})")
    comps = [
        component_from_model(model.audio_model, P, None, mask, "audio"),
        component_from_model(model.av_model, P, batch.lips, mask, "visual"),
    ]
    st = init_nmf(batch.pair_ids, batch.n_frames, P.shape[-1], rank, seed=seed, device=P.device, dtype=P.dtype)
    seeds = [derive_seed(seed, pid, model.name, algorithm) for pid in batch.pair_ids]
    res = run_switching_em(P, mask, comps, model.switch_config(), config, seeds, st.W, st.H, progress=progress)
    av_w = reduce_weights(res.component_weights.get("visual", {}).get("decoder"))
    S = res.wiener_gain.to(batch.X.dtype) * batch.X
    out = []
    for b, item in enumerate(batch.items):
        tb = item.n_frames
        y = istft(S[b, :tb].cpu(), item.n_samples, stft_cfg).numpy().astype(np.float64) * item.scale
        costs = res.cost[b]
        nd = int(torch.isfinite(costs).sum())
        f32 = lambda t: t.detach().cpu().numpy().astype(np.float32)  # noqa: E731
        post = f32(res.switch_post[b, :tb])
        tr: dict[str, Any] = {
            "cost": f32(costs[:nd]),
            "free_energy": f32(res.free_energy[b, :nd]),
            "frame_rate": np.float32(stft_cfg.frame_rate),
            "n_iter": np.int32(nd),
            "gain_g": f32(res.g[b, :tb]),
            "weights_decoder": post,
            "switch_posterior": post,
            "switch_prior_av": np.float32(float(torch.exp(res.switch_log_init[b, VISUAL]))),
        }
        if not bool(torch.isnan(res.acceptance[b]).all()):
            tr["acceptance"] = f32(res.acceptance[b, :nd])
            tr["final_acceptance"] = np.float32(float(res.final_acceptance[b]))
        if res.switch_log_trans is not None:
            tr["switch_transition"] = f32(torch.exp(res.switch_log_trans[b]))
        if av_w is not None:
            tr["av_component_weights_decoder"] = f32(av_w[b, :tb])
        out.append(ItemResult(item.item_id, y.astype(np.float32), tr))
    return out
