"""The components of the switching/mixture EM (``docs/switching_em.md``): one speech model per
component with its prior and decoder for one batch, the per-component E-steps (the shared
samplers of :mod:`models.enhancement.samplers`), and the per-frame switch emissions (the Laplace
frame evidence ``log p(x_t | m_t = k)`` or the samples' log joint).

Shapes: observed power ``X2 [B, T, F]``, ``mask [B, T]``, latents of component k
``z [..., B, T, L_k]`` (each component may have its own L), speech variances ``[..., B, T, F]``,
noise variance ``WH [B, T, F]``, gains ``g [B, T]``, emissions ``[B, T, K]`` (float64).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from models.enhancement.context import EMContext, reduce_weights
from models.enhancement.ldem import total_variation
from models.enhancement.nmf import EPS, noise_var
from models.enhancement.samplers import Langevin, RandomWalkMH


@dataclass
class Component:
    """One speech model inside the switch, with what the EM needs from it for one batch.

    ``decode(z) -> logvar [..., B, T, F]`` for ``z [..., B, T, L]``; ``prior_mu``/``prior_logvar``
    and ``z_init`` are ``[B, T, L]``; ``decode_weights(z) -> (logvar, weights [B, T, 2] | None)``
    the same pass with the model's decoder fusion weights (None: a component without them).
    ``context``: the component's :class:`EMContext` when it was built from a model
    (:func:`component_from_context`); :meth:`select` then cuts that context. A component given
    by plain functions must broadcast over the batch (no per-utterance state in ``decode``).
    """

    name: str
    decode: Callable[[torch.Tensor], torch.Tensor]
    prior_mu: torch.Tensor
    prior_logvar: torch.Tensor
    z_init: torch.Tensor
    decode_weights: Optional[Callable[[torch.Tensor], tuple[torch.Tensor, Optional[torch.Tensor]]]] = None
    context: Optional[EMContext] = None

    def decode_with_weights(self, z: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``(logvar [..., B, T, F], decoder fusion weights [B, T, 2] or None)`` of one decoder pass."""
        if self.decode_weights is None:
            return self.decode(z), None
        return self.decode_weights(z)

    def select(self, rows: torch.Tensor) -> "Component":
        """The component for the utterances ``rows`` (bool ``[B]``) only."""
        if self.context is not None:
            return component_from_context(self.name, self.context.select(rows))
        return dataclasses.replace(self, prior_mu=self.prior_mu[rows], prior_logvar=self.prior_logvar[rows], z_init=self.z_init[rows])


def component_from_context(name: str, ctx: EMContext) -> Component:
    """A :class:`Component` decoding through the model context ``ctx`` (its visual features,
    prior and the encoder mean on the noisy power as the chains' starting point, as published)."""
    return Component(name=name, decode=ctx.decode_logvar, prior_mu=ctx.prior_mu, prior_logvar=ctx.prior_logvar,
                     z_init=ctx.enc_mu, decode_weights=ctx.decode_logvar_weights, context=ctx)


def component_from_model(model: Any, power: torch.Tensor, lips: Optional[torch.Tensor], mask: torch.Tensor, name: str) -> Component:
    """A :class:`Component` from a :class:`models.base.SpeechModel` on ``power [B, T, F]`` (``lips``
    for an audio-visual model) without a :class:`models.enhancement.batch.Batch`."""
    return component_from_context(name, EMContext.from_tensors(power, mask, [0] * power.shape[0], model=model, lips=lips))


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
    mask: torch.Tensor, rnd: EMContext, n_steps: int, burn_in: int, sampler: RandomWalkMH,
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
    mask: torch.Tensor, rnd: EMContext, sampler: Langevin, prior_weight: float = 0.5, tv: float = 0.0,
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
