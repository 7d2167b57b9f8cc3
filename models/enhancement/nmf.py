"""NMF noise model and the Itakura-Saito multiplicative updates (batched, masked, time first).

Shapes (time first, as everywhere in the suite):

* ``P``  ``[B, T, F]`` observed power ``|X|^2``
* ``Vs`` ``[R, B, T, F]`` *unscaled* speech variances ``sigma^2(z_r)`` of R latent samples (or ``None``)
* ``W``  ``[B, F, K]``, ``H`` ``[B, T, K]`` non-negative noise NMF (noise variance ``WH = H W^T``)
* ``g``  ``[B, T]`` per-frame speech gain
* ``mask`` ``[B, T]`` bool, True on real frames

Model: ``Vx_r = g * Vs_r + WH``; cost (per utterance) = mean over valid ``(r, t, f)`` of
``log Vx_r + P / Vx_r`` (the published MCEM cost; the IS divergence up to a constant).

Responsibility weights ``w [R, B, T]`` (the K-component switching/mixture EM: ``q(m_t = k) / R_k``
on each of the ``R_k`` samples of component k, ``docs/switching_em.md``): every sum over samples
becomes ``sum_r w_r,t (...)`` and the cost ``sum_{r,t,f} w_r,t (log Vx_r + P / Vx_r)`` per real TF
bin. Without weights (a single model, K = 1) the code path is the unweighted one, so its results
are those of the uniform weights ``1 / R`` up to float rounding and exactly today's.

The updates are the majorisation-minimisation multiplicative rules with exponent 1/2
(Fevotte & Idier 2011 for beta = 0), so each one never increases the cost; they follow the
published MCEM code (avse-vae ``MCEM_algo.py``), update order W -> H -> g (trap T5 of ``docs/references.md``: the code
order, not the paper's H -> W -> g), no L1 normalisation of W (avse-vae), and a tiny floor
``eps`` on W, H, g to keep float32 away from zero.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from benchmark.seeding import rng as seeded_rng

EPS = 1e-12


@dataclass
class NMFState:
    """Per-utterance noise NMF factors and speech gains of one batch."""

    W: torch.Tensor  # [B, F, K]
    H: torch.Tensor  # [B, T, K]
    g: torch.Tensor  # [B, T]

    def noise_var(self) -> torch.Tensor:
        """``WH`` as ``[B, T, F]``."""
        return noise_var(self.W, self.H)

    def clone(self) -> "NMFState":
        return NMFState(self.W.clone(), self.H.clone(), self.g.clone())

    def select(self, rows: torch.Tensor) -> "NMFState":
        """The factors of the utterances ``rows`` (bool ``[B]``)."""
        return NMFState(self.W[rows], self.H[rows], self.g[rows])


def noise_var(W: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """Noise variance ``H W^T``: ``[B, T, K] x [B, F, K] -> [B, T, F]``."""
    return torch.matmul(H, W.transpose(-1, -2))


def init_nmf(
    seed_ids: Sequence[str],
    n_frames: Sequence[int],
    n_freq: int,
    rank: int,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> NMFState:
    """Seeded random init as published: W, H ~ U(0, 1) (floored at eps), g = 1.

    Each utterance draws from its own generator ``derive_seed(seed, seed_id, "nmf")`` with its
    *own* number of frames, so neither the batch composition nor the padding changes its values.
    ``seed_ids``: one id per utterance, its ``pair_id`` in the enhancement (the mixture without
    its visual condition: the clean- and corrupted-video items of a mixture start alike).
    """
    B, T = len(seed_ids), max(n_frames)
    W = np.empty((B, n_freq, rank), np.float64)
    H = np.ones((B, T, rank), np.float64)
    for b, (iid, tb) in enumerate(zip(seed_ids, n_frames)):
        r = seeded_rng(seed, iid, "nmf")
        W[b] = r.random((n_freq, rank))
        H[b, :tb] = r.random((tb, rank))
    W = np.maximum(W, EPS)
    H = np.maximum(H, EPS)
    to = dict(device=device, dtype=dtype)
    return NMFState(torch.as_tensor(W, **to), torch.as_tensor(H, **to), torch.ones(B, T, **to))


def _maskf(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.unsqueeze(-1)  # [B, T, 1] bool


def _masked(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Zero on padded frames, whatever (inf, NaN) the padding computed."""
    return torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device))


def is_terms(P: torch.Tensor, WH: torch.Tensor, g: torch.Tensor, Vs: torch.Tensor) -> torch.Tensor:
    """``log Vx + P / Vx`` per TF bin with ``Vx = g Vs + WH`` (floored at EPS; ``g`` broadcast over
    frequency), computed with one temporary and in-place passes (the MH and cost hot path)."""
    Vx = torch.addcmul(WH, g, Vs).clamp_min_(EPS)
    ratio = torch.div(P, Vx)
    return Vx.log_().add_(ratio)


def is_cost(P: torch.Tensor, Vs: Optional[torch.Tensor], st: NMFState, mask: torch.Tensor,
            weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-utterance cost ``[B]``: mean over valid (r, t, f) of ``log Vx + P / Vx``; with
    ``weights [R, B, T]`` (summing to 1 over r on each real frame) the weighted sum
    ``sum_{r,t,f} w_r,t (log Vx_r + P / Vx_r)`` per real TF bin."""
    WH = st.noise_var()
    m = _maskf(mask, P)
    if Vs is None:
        Vx = WH.clamp_min(EPS)
        tot = _masked(torch.log(Vx) + P / Vx, m).sum(dim=(-1, -2))
        R = 1
    else:
        gg = st.g.unsqueeze(-1)
        tot = torch.zeros(P.shape[0], dtype=P.dtype, device=P.device)
        for r in range(Vs.shape[0]):  # one [B, T, F] temporary per sample
            terms = is_terms(P, WH, gg, Vs[r])
            if weights is not None:
                terms.mul_(weights[r].unsqueeze(-1))
            tot += _masked(terms, m).sum(dim=(-1, -2))
        R = 1 if weights is not None else Vs.shape[0]
    n = mask.sum(-1).to(P.dtype) * P.shape[-1] * R
    return tot / n.clamp_min(1)


def _sums(P: torch.Tensor, Vs: Optional[torch.Tensor], g: torch.Tensor, WH: torch.Tensor, m: torch.Tensor, need_g: bool,
          weights: Optional[torch.Tensor] = None):
    """Sums over samples, masked, as ``(a, c, gn, gd)``: for the W and H updates (``need_g``
    False) ``a = sum_r P Vx^-2`` and ``c = sum_r Vx^-1`` (``gn = gd = None``); for the g update
    (``need_g`` True) ``gn = sum_r P Vs Vx^-2`` and ``gd = sum_r Vs Vx^-1`` (``a = c = None``: the
    g update does not use them). Each sample's terms times its weight ``weights [R, B, T]`` when
    given.

    Loops over the R samples so memory stays ``[B, T, F]``."""
    if Vs is None:
        if need_g:
            raise ValueError("the g update needs speech variances")
        Vx = WH.clamp_min(EPS)
        inv = 1.0 / Vx
        return _masked(P * inv * inv, m), _masked(inv, m), None, None
    acc1 = torch.zeros_like(WH)  # a (W, H) or gn (g): the P Vx^-2 terms
    acc2 = torch.zeros_like(WH)  # c (W, H) or gd (g): the Vx^-1 terms
    gg = g.unsqueeze(-1)
    for r in range(Vs.shape[0]):  # in-place passes: one [B, T, F] temporary per sample
        inv = torch.addcmul(WH, gg, Vs[r]).clamp_min_(EPS).reciprocal_()
        if weights is not None:
            _weighted_terms(inv, Vs[r] if need_g else None, weights[r].unsqueeze(-1), acc1, acc2)
            continue
        if need_g:
            acc2.addcmul_(Vs[r], inv)
            inv.mul_(inv)
            acc1.addcmul_(Vs[r], inv)
        else:
            acc2 += inv
            inv.mul_(inv)
            acc1 += inv
    acc1 = _masked(acc1.mul_(P), m)
    acc2 = _masked(acc2, m)
    return (None, None, acc1, acc2) if need_g else (acc1, acc2, None, None)


def _weighted_terms(inv: torch.Tensor, Vs: Optional[torch.Tensor], w: torch.Tensor, acc1: torch.Tensor,
                    acc2: torch.Tensor) -> None:
    """Adds one sample's weighted terms into the accumulators in place (``inv = Vx^-1``, ``w [B, T,
    1]``): ``w Vx^-2`` into ``acc1`` and ``w Vx^-1`` into ``acc2`` (W, H updates), or with ``Vs`` the
    g update's ``w Vs Vx^-2`` and ``w Vs Vx^-1``."""
    wi = inv * w
    if Vs is None:
        acc2 += wi
        acc1.addcmul_(wi, inv)
    else:
        acc2.addcmul_(Vs, wi)
        acc1.addcmul_(Vs, wi.mul_(inv))


#: the sums over samples of the M-step: :func:`_sums` (eager) or :func:`fused_sums` (compiled)
Sums = Callable[..., tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]]


def fused_sums(P: torch.Tensor, Vs: Optional[torch.Tensor], g: torch.Tensor, WH: torch.Tensor, m: torch.Tensor,
               need_g: bool, weights: Optional[torch.Tensor] = None):
    """The sums of :func:`_sums` written over all samples at once (``[R, B, T, F]`` expressions
    reduced over R), for ``torch.compile``: fused, it reads each ``Vs_r`` once and writes only the
    ``[B, T, F]`` results; run eagerly it would materialise ``[R, B, T, F]`` temporaries, so the
    eager EM keeps :func:`_sums`. Equal to :func:`_sums` up to the order of the sum over R."""
    if Vs is None:
        return _sums(P, Vs, g, WH, m, need_g, weights)
    inv = torch.reciprocal((g.unsqueeze(-1) * Vs + WH).clamp_min(EPS))  # [R, B, T, F]
    wi = inv if weights is None else inv * weights.unsqueeze(-1)
    if not need_g:
        return _masked(P * (wi * inv).sum(0), m), _masked(wi.sum(0), m), None, None
    gn = _masked(P * (Vs * wi * inv).sum(0), m)
    gd = _masked((Vs * wi).sum(0), m)
    return None, None, gn, gd


def fused_is_cost(P: torch.Tensor, Vs: Optional[torch.Tensor], st: NMFState, mask: torch.Tensor,
                  weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`is_cost` over all samples at once, for ``torch.compile`` (see :func:`fused_sums`)."""
    if Vs is None:
        return is_cost(P, Vs, st, mask, weights)
    WH = st.noise_var()
    Vx = (st.g.unsqueeze(-1) * Vs + WH).clamp_min(EPS)
    terms = torch.log(Vx) + P / Vx  # [R, B, T, F]
    if weights is not None:
        terms = terms * weights.unsqueeze(-1)
    tot = _masked(terms.sum(0), _maskf(mask, P)).sum(dim=(-1, -2))
    R = 1 if weights is not None else Vs.shape[0]
    n = mask.sum(-1).to(P.dtype) * P.shape[-1] * R
    return tot / n.clamp_min(1)


def wiener_gain(Vs: torch.Tensor, g: torch.Tensor, WH: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The "probabilistic Wiener filter" gain ``[B, T, F]`` of the final estimate ``S = gain * X``:
    the gain ``g Vs_r / (g Vs_r + WH)`` of each sample ``Vs [R, B, T, F]`` averaged over the
    samples (``g [B, T]``, ``WH [B, T, F]``), uniformly or with per-frame ``weights [R, B, T]``
    (the switching EM: responsibility / samples of the component)."""
    gVs = g.unsqueeze(-1) * Vs
    ratio = gVs.div_(torch.add(gVs, WH).clamp_min_(EPS))  # in place: two [R, B, T, F] temporaries, not four
    if weights is None:
        return ratio.mean(0)
    return (weights.unsqueeze(-1) * ratio).sum(0)


def update_W(P: torch.Tensor, Vs: Optional[torch.Tensor], st: NMFState, mask: torch.Tensor,
             weights: Optional[torch.Tensor] = None, sums: Optional[Sums] = None) -> torch.Tensor:
    """``W <- W * sqrt( (sum_r P Vx_r^-2) H / (sum_r Vx_r^-1) H )`` (sums over valid frames;
    ``weights [R, B, T]``: each sample's terms weighted; ``sums``: the sums' kernel, default the
    eager :func:`_sums`)."""
    a, c, _, _ = (sums or _sums)(P, Vs, st.g, st.noise_var(), _maskf(mask, P), False, weights)
    num = torch.matmul(a.transpose(-1, -2), st.H)  # [B, F, K]
    den = torch.matmul(c.transpose(-1, -2), st.H)
    return (st.W * torch.sqrt(num / den.clamp_min(EPS))).clamp_min(EPS)


def update_H(P: torch.Tensor, Vs: Optional[torch.Tensor], st: NMFState, mask: torch.Tensor,
             weights: Optional[torch.Tensor] = None, sums: Optional[Sums] = None) -> torch.Tensor:
    """``H <- H * sqrt( (sum_r P Vx_r^-2) W / (sum_r Vx_r^-1) W )`` (padded frames keep their value)."""
    a, c, _, _ = (sums or _sums)(P, Vs, st.g, st.noise_var(), _maskf(mask, P), False, weights)
    num = torch.matmul(a, st.W)  # [B, T, K]
    den = torch.matmul(c, st.W)
    new = (st.H * torch.sqrt(num / den.clamp_min(EPS))).clamp_min(EPS)
    return torch.where(mask.unsqueeze(-1), new, st.H)


def update_g(P: torch.Tensor, Vs: torch.Tensor, st: NMFState, mask: torch.Tensor,
             weights: Optional[torch.Tensor] = None, sums: Optional[Sums] = None) -> torch.Tensor:
    """``g_t <- g_t * sqrt( sum_{f,r} P Vs_r Vx_r^-2 / sum_{f,r} Vs_r Vx_r^-1 )``."""
    _, _, gn, gd = (sums or _sums)(P, Vs, st.g, st.noise_var(), _maskf(mask, P), True, weights)
    new = (st.g * torch.sqrt(gn.sum(-1) / gd.sum(-1).clamp_min(EPS))).clamp_min(EPS)
    return torch.where(mask, new, st.g)


def m_step(
    P: torch.Tensor,
    Vs: Optional[torch.Tensor],
    st: NMFState,
    mask: torch.Tensor,
    *,
    update: str = "WHg",
    active: Optional[torch.Tensor] = None,
    weights: Optional[torch.Tensor] = None,
    sums: Optional[Sums] = None,
) -> NMFState:
    """One M-step: the updates named in ``update`` (subset of "W", "H", "g"), in order W -> H -> g.

    ``active`` ``[B]`` bool: utterances that already converged keep their factors. ``weights
    [R, B, T]``: the responsibility weights of the samples (module docstring; None: uniform).
    Each update never increases the (weighted) cost: MM with exponent 1/2, termwise.
    ``sums``: the kernel of the sums over samples (default the eager :func:`_sums`; the EM passes
    the compiled :func:`fused_sums` when ``EMConfig.compile`` is on).
    """
    W, H, g = st.W, st.H, st.g
    cur = NMFState(W, H, g)
    if "W" in update:
        cur = NMFState(update_W(P, Vs, cur, mask, weights, sums), cur.H, cur.g)
    if "H" in update:
        cur = NMFState(cur.W, update_H(P, Vs, cur, mask, weights, sums), cur.g)
    if "g" in update and Vs is not None:
        cur = NMFState(cur.W, cur.H, update_g(P, Vs, cur, mask, weights, sums))
    if active is not None:
        a1 = active.view(-1, 1)
        cur = NMFState(
            torch.where(a1.unsqueeze(-1), cur.W, W), torch.where(a1.unsqueeze(-1), cur.H, H), torch.where(a1, cur.g, g)
        )
    return cur


# ---------------------------------------------------------------------------------------
# Plain IS-NMF with an optional fixed part of the dictionary (the "nmf-only" baseline and the
# training of the speech dictionary).
# ---------------------------------------------------------------------------------------


def is_nmf(
    P: torch.Tensor,
    rank: int,
    *,
    n_iter: int = 100,
    W_fixed: Optional[torch.Tensor] = None,
    rng: Optional[np.random.Generator] = None,
    mask: Optional[torch.Tensor] = None,
    W_init: Optional[torch.Tensor] = None,
    H_init: Optional[torch.Tensor] = None,
    update_w: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """IS-NMF ``P [T, F] ~ H W^T`` with multiplicative (exponent 1/2) updates.

    With ``W_fixed [F, Ks]`` the dictionary is ``[W_fixed | W_free]`` (``rank`` free columns)
    and only the free columns (and all of H) are updated. Returns ``(W [F, Ks+rank],
    H [T, Ks+rank], costs)``; ``costs`` is the mean IS cost after each iteration.
    """
    T, F = P.shape
    rng = rng if rng is not None else np.random.default_rng(0)
    ks = 0 if W_fixed is None else W_fixed.shape[1]
    dt, dev = P.dtype, P.device
    if W_init is None:
        Wf = torch.as_tensor(np.maximum(rng.random((F, rank)), EPS), dtype=dt, device=dev)
    else:
        Wf = W_init
    if H_init is None:
        Hh = torch.as_tensor(np.maximum(rng.random((T, ks + rank)), EPS), dtype=dt, device=dev)
    else:
        Hh = H_init
    m = torch.ones(T, 1, dtype=dt, device=dev) if mask is None else mask.to(dt).view(T, 1)
    P = P.clamp_min(0)
    costs: list[float] = []

    def full_w() -> torch.Tensor:
        return Wf if W_fixed is None else torch.cat([W_fixed, Wf], dim=1)

    for _ in range(n_iter):
        if update_w and rank > 0:
            Wa = full_w()
            V = (Hh @ Wa.T).clamp_min(EPS)
            a, c = P * V.pow(-2) * m, V.reciprocal() * m
            Hs = Hh[:, ks:]
            Wf = (Wf * torch.sqrt((a.T @ Hs) / (c.T @ Hs).clamp_min(EPS))).clamp_min(EPS)
        Wa = full_w()
        V = (Hh @ Wa.T).clamp_min(EPS)
        a, c = P * V.pow(-2), V.reciprocal()
        Hh = (Hh * torch.sqrt((a @ Wa) / (c @ Wa).clamp_min(EPS))).clamp_min(EPS)
        V = (Hh @ Wa.T).clamp_min(EPS)
        costs.append(float(((torch.log(V) + P / V) * m).sum() / (m.sum() * F)))
    return full_w(), Hh, costs
