"""EM for the inference-level reliability baselines: a per-frame switch between an audio-only
and an audio-visual speech model (mixture of VAEs, Sadeghi & Alameda-Pineda ICASSP 2020;
switching VAE, ICASSP 2021).

The papers' update equations were not reachable here; everything below is derived from the
model as stated, in ``docs/switching_em.md`` (structured mean-field variational EM):

* model: ``x_ft = sqrt(g_t) s_ft + b_ft``, ``b_ft ~ N_c(0, (WH)_ft)``; a switch
  ``m_t in {A, AV}`` (i.i.d. with ``P(AV) = pi`` for the mixture, a two-state Markov chain
  for the switching model); one latent chain per component ``z^k_t ~ p_k(z | v)`` and
  ``s_ft | m_t = k, z^k_t ~ N_c(0, sigma^2_{k,f}(z^k_t, v_t))``.
* posterior factorisation ``q(m) prod_k q(z^k)``:
  - ``q(m)`` from the per-frame "emission" scores ``L_t(k) = E_q(z^k)[log N_c(x_t; 0,
    g_t sigma^2_k + WH)]``: a softmax for the mixture, forward-backward for the chain;
  - ``q(z^k_t) ∝ p_k(z) exp(q(m_t = k) log p(x_t | z, m_t = k))``: the component's posterior
    with its likelihood tempered by its responsibility, sampled by random-walk
    Metropolis-Hastings (``mcem``) or unadjusted Langevin dynamics (``ldem``);
  - M-step: multiplicative IS updates of ``W, H, g`` on the responsibility-weighted
    expected cost (weights ``q(m_t = k) / R`` on each of the ``R`` samples of component k);
* final estimate: ``E_q[s_ft] = sum_k q(m_t = k) E_q(z^k)[g sigma^2_k / (g sigma^2_k + WH)] x_ft``.

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

log = logging.getLogger(__name__)

#: switch state indices (column order of every weight array: 0 = audio, 1 = visual)
AUDIO, VISUAL = 0, 1
_TINY = 1e-12

#: E-step families usable with the composite models, by the spec's algorithm name
SWITCH_ESTEPS: Registry = Registry("switching E-step")


# ----------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------
@dataclass
class SwitchConfig:
    """The switch model: i.i.d. per-frame mixture or a two-state Markov chain."""

    kind: str = field(default="mixture", metadata={"choices": ("mixture", "markov")})
    prior_av: float = field(default=0.5, metadata={"range": (0.0, 1.0)})  # pi = P(m_t = AV) (mixture), P(m_1 = AV) (markov)
    stay_prob: float = field(default=0.95, metadata={"range": (0.0, 1.0)})  # markov: P(m_t = m_{t-1})
    learn: bool = False  # M-step update of pi (mixture) / the transition matrix (markov), per utterance

    def __post_init__(self) -> None:
        if self.kind not in ("mixture", "markov"):
            raise ValueError(f"SwitchConfig.kind: expected 'mixture' or 'markov', got {self.kind!r}")
        for name in ("prior_av", "stay_prob"):
            v = getattr(self, name)
            if not (0.0 < v < 1.0):
                raise ValueError(f"SwitchConfig.{name}: expected a probability strictly in (0, 1), got {v!r}")


@dataclass
class SwitchMCEMConfig:
    """Monte Carlo EM E-step (random-walk MH per frame and component); published MCEM defaults."""

    n_iter: int = field(default=100, metadata={"range": (1, None)})
    proposal_var: float = field(default=0.01, metadata={"range": (0.0, None)})
    n_steps: int = field(default=40, metadata={"range": (1, None)})
    burn_in: int = field(default=30, metadata={"range": (0, None)})
    final_steps: int = field(default=100, metadata={"range": (1, None)})
    final_burn_in: int = field(default=75, metadata={"range": (0, None)})
    n_chains: int = field(default=1, metadata={"range": (1, None)})

    def __post_init__(self) -> None:
        if self.burn_in >= self.n_steps or self.final_burn_in >= self.final_steps:
            raise ValueError("SwitchMCEMConfig: burn_in must be smaller than n_steps (and final_burn_in than final_steps)")


@dataclass
class SwitchLDEMConfig:
    """Langevin-dynamics EM E-step (unadjusted Langevin, parallel chains); av-dkf runner defaults."""

    n_iter: int = field(default=100, metadata={"range": (1, None)})
    lr: float = field(default=5e-3, metadata={"range": (0.0, None)})
    n_steps: int = field(default=10, metadata={"range": (1, None)})
    n_chains: int = field(default=5, metadata={"range": (1, None)})
    init_var: float = field(default=0.01, metadata={"range": (0.0, None)})  # chains start at encoder mean + N(0, init_var)
    kick_var: float = field(default=0.01, metadata={"range": (0.0, None)})  # extra N(0, kick_var) after each E-step (published)
    final_steps: int = field(default=10, metadata={"range": (1, None)})
    grad_clip: float = field(default=0.0, metadata={"range": (0.0, None)})  # 0: off; else per-frame gradient norm cap


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
    and ``z_init`` are ``[B, T, L]``.
    """

    name: str
    decode: Callable[[torch.Tensor], torch.Tensor]
    prior_mu: torch.Tensor
    prior_logvar: torch.Tensor
    z_init: torch.Tensor
    last_weights: Callable[[], dict[str, torch.Tensor]] = field(default=lambda: {})


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
        last_weights=getattr(model, "last_weights", lambda: {}),
    )


class UttRandom:
    """Random numbers drawn per utterance (one generator each, seeded from its id), padded to the
    batch length: an utterance gets the same numbers alone or in any batch."""

    def __init__(self, seeds: Sequence[int], lengths: Sequence[int], device: torch.device | str, dtype: torch.dtype) -> None:
        self.lengths = [int(n) for n in lengths]
        self.T = max(self.lengths) if self.lengths else 0
        self.device = torch.device(device)
        self.dtype = dtype
        self.gens = []
        for s in seeds:
            g = torch.Generator(device=self.device)
            g.manual_seed(int(s))
            self.gens.append(g)

    def _draw(self, fn: Callable[..., torch.Tensor], lead: tuple[int, ...], tail: tuple[int, ...]) -> torch.Tensor:
        outs = []
        for g, n in zip(self.gens, self.lengths):
            x = fn((*lead, n, *tail), generator=g, device=self.device, dtype=self.dtype)
            if n < self.T:
                pad = torch.zeros((*lead, self.T - n, *tail), device=self.device, dtype=self.dtype)
                x = torch.cat([x, pad], dim=len(lead))
            outs.append(x)
        return torch.stack(outs, dim=len(lead))  # [*lead, B, T, *tail]

    def randn(self, lead: tuple[int, ...], tail: tuple[int, ...] = ()) -> torch.Tensor:
        return self._draw(torch.randn, lead, tail)

    def rand(self, lead: tuple[int, ...], tail: tuple[int, ...] = ()) -> torch.Tensor:
        return self._draw(torch.rand, lead, tail)


# ----------------------------------------------------------------------------------------
# the switch posterior
# ----------------------------------------------------------------------------------------
def mixture_posterior(log_emit: torch.Tensor, log_prior: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame switch posterior of an i.i.d. mixture.

    ``log_emit [B, T, K]``, ``log_prior [B, K]`` (log pi). Returns ``post [B, T, K]`` (zero on
    padding) and ``log_z [B]`` = sum over real frames of ``logsumexp_k(log pi_k + L_t(k))``.
    """
    a = log_emit + log_prior[:, None, :]
    lz = torch.logsumexp(a, dim=-1)  # [B, T]
    post = torch.exp(a - lz[..., None]) * mask[..., None]
    return post, (lz * mask).sum(-1)


def forward_backward(
    log_emit: torch.Tensor, log_init: torch.Tensor, log_trans: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward-backward in log space, batched and masked (real frames first, padding after).

    ``log_emit [B, T, K]``, ``log_init [B, K]``, ``log_trans [B, K, K]`` (``[i, j]`` = log
    P(m_t = j | m_{t-1} = i)), ``mask [B, T]``. Returns ``post [B, T, K]`` (zero on padding),
    ``pair [B, T-1, K, K]`` (expected transition counts t-1 -> t, zero where t is padding) and
    ``log_z [B]`` the log-normaliser (log-likelihood of the emissions).
    """
    B, T, K = log_emit.shape
    m = mask.bool()
    alpha = torch.empty_like(log_emit)
    alpha[:, 0] = log_init + log_emit[:, 0]
    for t in range(1, T):
        nxt = torch.logsumexp(alpha[:, t - 1, :, None] + log_trans, dim=1) + log_emit[:, t]
        alpha[:, t] = torch.where(m[:, t, None], nxt, alpha[:, t - 1])  # padding carries the last real alpha
    log_z = torch.logsumexp(alpha[:, T - 1], dim=-1)  # = at the last real frame
    beta = torch.zeros_like(log_emit)
    for t in range(T - 2, -1, -1):
        nxt = torch.logsumexp(log_trans + (log_emit[:, t + 1] + beta[:, t + 1])[:, None, :], dim=2)
        beta[:, t] = torch.where(m[:, t + 1, None], nxt, torch.zeros_like(nxt))
    lp = alpha + beta - log_z[:, None, None]
    post = torch.exp(lp) * m[..., None]
    if T > 1:
        lpair = (alpha[:, :-1, :, None] + log_trans[:, None] + (log_emit[:, 1:] + beta[:, 1:])[:, :, None, :]
                 - log_z[:, None, None, None])
        pair = torch.exp(lpair) * m[:, 1:, None, None]
    else:
        pair = log_emit.new_zeros(B, 0, K, K)
    return post, pair, log_z


def switch_posterior(
    log_emit: torch.Tensor, mask: torch.Tensor, params: "SwitchParams"
) -> tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
    """``q(m)`` for either switch kind: ``(post [B,T,2], pair or None, log_z [B])``."""
    if params.kind == "mixture":
        post, lz = mixture_posterior(log_emit, params.log_init, mask)
        return post, None, lz
    return forward_backward(log_emit, params.log_init, params.log_trans, mask)


@dataclass
class SwitchParams:
    """Per-utterance switch parameters (log pi ``[B, 2]`` and, for markov, log A ``[B, 2, 2]``)."""

    kind: str
    log_init: torch.Tensor
    log_trans: Optional[torch.Tensor] = None

    @classmethod
    def from_config(cls, cfg: SwitchConfig, B: int, device: torch.device | str, dtype: torch.dtype) -> "SwitchParams":
        pi = torch.tensor([1.0 - cfg.prior_av, cfg.prior_av], device=device, dtype=dtype)
        log_init = pi.log().expand(B, 2).clone()
        if cfg.kind == "mixture":
            return cls("mixture", log_init)
        s = cfg.stay_prob
        A = torch.tensor([[s, 1.0 - s], [1.0 - s, s]], device=device, dtype=dtype)
        return cls("markov", log_init, A.log().expand(B, 2, 2).clone())

    def update(self, post: torch.Tensor, pair: Optional[torch.Tensor], mask: torch.Tensor) -> None:
        """M-step of the switch parameters (maximises the expected log p(m))."""
        n = mask.sum(-1).clamp_min(1).to(post.dtype)
        if self.kind == "mixture":
            pi = post.sum(1) / n[:, None]
            self.log_init = pi.clamp(1e-6, 1 - 1e-6).log()
            return
        self.log_init = post[:, 0].clamp(1e-6, 1 - 1e-6).log()
        assert pair is not None
        counts = pair.sum(1)  # [B, 2, 2]
        A = (counts + 1e-6) / (counts + 1e-6).sum(-1, keepdim=True)
        self.log_trans = A.log()

    def log_prior_term(self, post: torch.Tensor, pair: Optional[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """``E_q[log p(m)]`` per utterance ``[B]``."""
        if self.kind == "mixture":
            return (post * self.log_init[:, None, :]).sum((1, 2))
        first = (post[:, 0] * self.log_init).sum(-1)
        if pair is None or pair.shape[1] == 0:
            return first
        return first + (pair * self.log_trans[:, None]).sum((1, 2, 3))


# ----------------------------------------------------------------------------------------
# weighted IS-NMF M-step and the costs
# ----------------------------------------------------------------------------------------
def noise_var(W: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """``(WH)`` time first: ``W [B, F, K]``, ``H [B, T, K]`` -> ``[B, T, F]``."""
    return H @ W.transpose(-1, -2)


def expected_cost(X2: torch.Tensor, sig2: torch.Tensor, wts: torch.Tensor, W: torch.Tensor, H: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Responsibility-weighted expected IS cost per utterance ``[B]``:
    ``sum_{t,f,p} w_{p,t} (log Vx_p + X2 / Vx_p)`` with ``Vx_p = g sig2_p + WH``
    (= minus the expected complete-data log-likelihood up to ``F log pi`` per frame).
    ``sig2 [P, B, T, F]``, ``wts [P, B, T]`` (zero on padding)."""
    Vx = g[None, ..., None] * sig2 + noise_var(W, H)[None]
    per = (Vx.log() + X2[None] / Vx).sum(-1)  # [P, B, T]
    return (wts * per).sum((0, 2))


def update_nmf_gain(
    X2: torch.Tensor, sig2: torch.Tensor, wts: torch.Tensor, W: torch.Tensor, H: torch.Tensor, g: torch.Tensor,
    mask: torch.Tensor, update_gain: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One round of multiplicative updates W -> H -> g (the published order) on the weighted
    expected IS cost of :func:`expected_cost`; each step never increases it (MM, exponent 1/2).

    This is the per-sample-weighted form of the MCEM updates (uniform weights 1/R give those back).
    Padding frames have zero weight and keep their H and g.
    """
    m = mask[..., None].to(X2.dtype)

    def stats(W_, H_, g_):
        Vx = g_[None, ..., None] * sig2 + noise_var(W_, H_)[None]
        inv = Vx.reciprocal()
        w = wts[..., None]
        return Vx, (w * inv).sum(0), (w * X2[None] * inv * inv).sum(0)  # [P..], [B,T,F], [B,T,F]

    _, a, b = stats(W, H, g)
    num = (b * m).transpose(-1, -2) @ H
    den = (a * m).transpose(-1, -2) @ H
    W = W * torch.sqrt(num / den.clamp_min(_TINY)).clamp_min(0)
    W = W.clamp_min(_TINY)

    _, a, b = stats(W, H, g)
    num = b @ W
    den = a @ W
    ratio = torch.where(mask[..., None], torch.sqrt(num / den.clamp_min(_TINY)), torch.ones_like(num))
    H = (H * ratio).clamp_min(_TINY)

    if update_gain:
        Vx, _, _ = stats(W, H, g)
        inv = Vx.reciprocal()
        w = wts[..., None]
        num = (w * X2[None] * sig2 * inv * inv).sum((0, -1))
        den = (w * sig2 * inv).sum((0, -1))
        ratio = torch.where(mask, torch.sqrt(num / den.clamp_min(_TINY)), torch.ones_like(num))
        g = (g * ratio).clamp_min(_TINY)
    return W, H, g


def emission_scores(X2: torch.Tensor, sig2: torch.Tensor, n_per_comp: Sequence[int], W: torch.Tensor, H: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``L_t(k) = mean_r -sum_f (log Vx_{k,r} + X2 / Vx_{k,r})`` (the ``-F log pi`` constant
    dropped) for the samples of each component, stacked ``[B, T, K]``."""
    Vx = g[None, ..., None] * sig2 + noise_var(W, H)[None]
    ll = -(Vx.log() + X2[None] / Vx).sum(-1)  # [P, B, T]
    out, i = [], 0
    for n in n_per_comp:
        out.append(ll[i:i + n].mean(0))
        i += n
    return torch.stack(out, dim=-1)


def particle_weights(post: torch.Tensor, n_per_comp: Sequence[int]) -> torch.Tensor:
    """``w_{p,t} = q(m_t = k(p)) / R_k`` ``[P, B, T]``."""
    return torch.cat([post[None, ..., k].expand(n, -1, -1) / n for k, n in enumerate(n_per_comp)], dim=0)


# ----------------------------------------------------------------------------------------
# E-steps on each component's tempered posterior
# ----------------------------------------------------------------------------------------
def _neg_log_target(
    comp: Component, z: torch.Tensor, resp: torch.Tensor, X2: torch.Tensor, WH: torch.Tensor, g: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``U(z) = r_t sum_f (log Vx + X2/Vx) + 1/2 sum_l (z - mu)^2 / var`` per frame ``[..., B, T]``
    and the speech variance ``sig2 [..., B, T, F]``."""
    sig2 = torch.exp(comp.decode(z))
    Vx = g[..., None] * sig2 + WH
    lik = (Vx.log() + X2 / Vx).sum(-1)
    pri = 0.5 * ((z - comp.prior_mu) ** 2 * torch.exp(-comp.prior_logvar)).sum(-1)
    return (resp * lik + pri) * mask, sig2


@dataclass
class EStepResult:
    """Samples of one component: their speech variances, the chains' state and MH acceptance."""

    sig2: torch.Tensor  # [R, B, T, F]
    z: torch.Tensor  # [C, B, T, L] chain state to warm-start the next E-step
    acceptance: float = float("nan")


def mh_estep(
    comp: Component, z: torch.Tensor, resp: torch.Tensor, X2: torch.Tensor, WH: torch.Tensor, g: torch.Tensor,
    mask: torch.Tensor, rnd: UttRandom, n_steps: int, burn_in: int, proposal_var: float,
) -> EStepResult:
    """Random-walk Metropolis-Hastings per frame (frames independent, as in the published MCEM),
    ``C`` chains ``z [C, B, T, L]`` warm-started; keeps the ``n_steps - burn_in`` last states."""
    C, L = z.shape[0], z.shape[-1]
    with torch.no_grad():
        U, sig2 = _neg_log_target(comp, z, resp, X2, WH, g, mask)
        kept, acc, n_real = [], 0.0, float(mask.sum()) * C
        std = math.sqrt(proposal_var)
        for step in range(n_steps):
            zp = z + std * rnd.randn((C,), (L,))
            Up, sig2p = _neg_log_target(comp, zp, resp, X2, WH, g, mask)
            u = rnd.rand((C,)).clamp_min(1e-30)
            accept = (u.log() < (U - Up)) & mask
            z = torch.where(accept[..., None], zp, z)
            sig2 = torch.where(accept[..., None], sig2p, sig2)
            U = torch.where(accept, Up, U)
            acc += float(accept.sum())
            if step >= burn_in:
                kept.append(sig2)
        return EStepResult(torch.cat(kept, 0), z, acc / max(n_real * n_steps, 1.0))


def langevin_estep(
    comp: Component, z: torch.Tensor, resp: torch.Tensor, X2: torch.Tensor, WH: torch.Tensor, g: torch.Tensor,
    mask: torch.Tensor, rnd: UttRandom, n_steps: int, lr: float, grad_clip: float = 0.0,
) -> EStepResult:
    """Unadjusted Langevin ``z <- z - lr grad U + sqrt(2 lr) xi`` on ``C`` parallel chains; the
    chains' final states are the samples (as in the published LDEM)."""
    C, L = z.shape[0], z.shape[-1]
    std = math.sqrt(2.0 * lr)
    z = z.detach()
    for _ in range(n_steps):
        with torch.enable_grad():
            zz = z.clone().requires_grad_(True)
            U, _ = _neg_log_target(comp, zz, resp, X2, WH, g, mask)
            (grad,) = torch.autograd.grad(U.sum(), zz)
        if grad_clip > 0:
            nrm = grad.norm(dim=-1, keepdim=True)
            grad = grad * (grad_clip / nrm.clamp_min(grad_clip))
        z = torch.where(mask[..., None], z - lr * grad + std * rnd.randn((C,), (L,)), z).detach()
    with torch.no_grad():
        sig2 = torch.exp(comp.decode(z))
    return EStepResult(sig2, z)


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
    cost: torch.Tensor  # [B, n_iter] expected IS cost per real TF bin after each M-step
    free_energy: torch.Tensor  # [B, n_iter] -log Z(q(m)) per real TF bin with the iteration's samples
    acceptance: torch.Tensor  # [n_iter] (MCEM; NaN for Langevin)
    switch_log_init: torch.Tensor  # [B, 2]
    switch_log_trans: Optional[torch.Tensor]  # [B, 2, 2] (markov)
    component_weights: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


def init_nmf(seeds: Sequence[int], lengths: Sequence[int], n_freq: int, rank: int, device: torch.device | str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``W ~ U(0,1) [B, F, K]`` and ``H ~ U(0,1) [B, T, K]`` from per-utterance seeds (padding:
    ones), clipped to a tiny floor as published."""
    T = max(lengths)
    Ws, Hs = [], []
    for s, n in zip(seeds, lengths):
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(derive_seed(int(s), "nmf-init")))
        Ws.append(torch.rand(n_freq, rank, generator=gen, dtype=torch.float64))
        h = torch.ones(T, rank, dtype=torch.float64)
        h[:n] = torch.rand(n, rank, generator=gen, dtype=torch.float64)
        Hs.append(h)
    W = torch.stack(Ws).to(device=device, dtype=dtype).clamp_min(_TINY)
    H = torch.stack(Hs).to(device=device, dtype=dtype).clamp_min(_TINY)
    return W, H


def run_switching_em(
    X2: torch.Tensor,
    mask: torch.Tensor,
    components: Sequence[Component],
    switch: SwitchConfig,
    estep: SwitchMCEMConfig | SwitchLDEMConfig,
    seeds: Sequence[int],
    nmf_rank: int = 10,
    W0: Optional[torch.Tensor] = None,
    H0: Optional[torch.Tensor] = None,
    update_gain: bool = True,
    progress: bool = False,
) -> SwitchEMResult:
    """Variational EM with a switch between ``components`` (index 0 = audio-only, 1 = audio-visual).

    ``X2 [B, T, F]`` noisy power, ``mask [B, T]`` (real frames first), ``seeds`` one per
    utterance (use :func:`benchmark.seeding.derive_seed` of the utterance id). ``estep`` picks the
    sampler: :class:`SwitchMCEMConfig` (MH) or :class:`SwitchLDEMConfig` (Langevin).
    See ``docs/switching_em.md`` for the derivation.
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
    B, T, F = X2.shape
    dev, dt = X2.device, X2.dtype
    X2 = X2 * mask[..., None]
    rnd = UttRandom([derive_seed(int(s), "switching-em") for s in seeds], lengths, dev, dt)
    if W0 is None or H0 is None:
        W, H = init_nmf(seeds, lengths, F, nmf_rank, dev, dt)
    else:
        W, H = W0.clone(), H0.clone()
    g = torch.ones(B, T, device=dev, dtype=dt)
    sp = SwitchParams.from_config(switch, B, dev, dt)
    n_bins = (mask.sum(-1) * F).to(dt)

    is_mh = isinstance(estep, SwitchMCEMConfig)
    C = estep.n_chains
    # chain states per component
    zs = []
    for comp in components:
        z0 = comp.z_init.to(dev, dt).expand(C, *comp.z_init.shape).clone()
        if not is_mh and estep.init_var > 0:
            z0 = z0 + math.sqrt(estep.init_var) * rnd.randn((C,), (z0.shape[-1],))
        zs.append(z0)
    # start: q(m) = prior marginals
    post = torch.exp(sp.log_init)[:, None, :].expand(B, T, 2) * mask[..., None]
    costs, fes, accs = [], [], []

    def run_estep(final: bool) -> tuple[torch.Tensor, list[int], float]:
        WH = noise_var(W, H)
        sig_all, n_per, acc = [], [], []
        for k, comp in enumerate(components):
            resp = post[..., k]
            if is_mh:
                steps = estep.final_steps if final else estep.n_steps
                burn = estep.final_burn_in if final else estep.burn_in
                r = mh_estep(comp, zs[k], resp, X2, WH, g, mask, rnd, steps, burn, estep.proposal_var)
                acc.append(r.acceptance)
            else:
                steps = estep.final_steps if final else estep.n_steps
                r = langevin_estep(comp, zs[k], resp, X2, WH, g, mask, rnd, steps, estep.lr, estep.grad_clip)
            zs[k] = r.z
            if not is_mh and not final and estep.kick_var > 0:
                zs[k] = zs[k] + math.sqrt(estep.kick_var) * rnd.randn((C,), (zs[k].shape[-1],))
            sig_all.append(r.sig2)
            n_per.append(r.sig2.shape[0])
        return torch.cat(sig_all, 0), n_per, (sum(acc) / len(acc) if acc else float("nan"))

    iters = range(estep.n_iter)
    if progress:
        from tqdm import tqdm

        iters = tqdm(iters, desc=f"switching EM ({switch.kind}, {'mcem' if is_mh else 'ldem'})", leave=False)
    with torch.no_grad():
        for _ in iters:
            sig2, n_per, acc = run_estep(final=False)
            # E-step for the switch with the new samples
            post, pair, log_z = switch_posterior(emission_scores(X2, sig2, n_per, W, H, g), mask, sp)
            fes.append(-log_z / n_bins)
            # M-step
            wts = particle_weights(post, n_per)
            W, H, g = update_nmf_gain(X2, sig2, wts, W, H, g, mask, update_gain=update_gain)
            if switch.learn:
                sp.update(post, pair, mask)
            costs.append(expected_cost(X2, sig2, wts, W, H, g) / n_bins)
            accs.append(acc)
        # final estimate
        sig2, n_per, _ = run_estep(final=True)
        post, pair, _ = switch_posterior(emission_scores(X2, sig2, n_per, W, H, g), mask, sp)
        wts = particle_weights(post, n_per)
        Vs = g[None, ..., None] * sig2
        gain = (wts[..., None] * Vs / (Vs + noise_var(W, H)[None])).sum(0) * mask[..., None]
    comp_w = {}
    for comp in components:
        try:
            lw = comp.last_weights()
        except Exception:  # pragma: no cover - diagnostics only
            lw = {}
        if lw:
            comp_w[comp.name] = {k: v.detach() for k, v in lw.items()}
    return SwitchEMResult(
        wiener_gain=gain, switch_post=post, W=W, H=H, g=g,
        cost=torch.stack(costs, -1), free_energy=torch.stack(fes, -1),
        acceptance=torch.tensor(accs, dtype=torch.float64),
        switch_log_init=sp.log_init, switch_log_trans=sp.log_trans, component_weights=comp_w,
    )


SWITCH_ESTEPS.register("mcem", SwitchMCEMConfig, doc="Monte Carlo EM: random-walk MH on each component's tempered posterior")
SWITCH_ESTEPS.register("ldem", SwitchLDEMConfig, doc="Langevin EM: unadjusted Langevin chains on each component's tempered posterior")


def estep_config(algorithm: str, params: dict[str, Any] | None = None) -> SwitchMCEMConfig | SwitchLDEMConfig:
    """The E-step config for a spec algorithm name (``mcem``/``ldem``) and its params."""
    if algorithm not in SWITCH_ESTEPS:
        raise KeyError(
            f"algorithm {algorithm!r} has no switching E-step for the mixture/switching VAEs; "
            f"known: {', '.join(SWITCH_ESTEPS.names())}"
        )
    return _config_from_params(SWITCH_ESTEPS.get(algorithm), params, f"switching E-step {algorithm!r}")
