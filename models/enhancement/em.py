"""The shared EM loop of the VAE + NMF enhancement, batched over utterances.

Test-time model (Leglaive et al. 2018; Sadeghi et al. 2020)::

    x_tf = sqrt(g_t) s_tf + b_tf,  s_tf | z_t, v ~ N_c(0, sigma^2_f(z_t, v)),  b_tf ~ N_c(0, (WH)_tf)

An algorithm (MCEM, VEM, PEEM, LDEM) is an :class:`EMAlgorithm` subclass that supplies the
E-step (latent samples -> unscaled speech variances ``[R, B, T, F]``) and the latents of the final
estimate; this module runs the loop: E-step, M-step (multiplicative NMF/gain updates,
:mod:`models.enhancement.nmf`), cost trace, per-utterance convergence (a converged utterance is
finished and leaves the batch: every algorithm implements :meth:`EMAlgorithm.select`), and the
final "probabilistic Wiener filter" ``S = mean_r[g Vs_r / (g Vs_r + WH)] X`` followed by the iSTFT.

Nothing here knows which fusion is inside the model: it only calls the
:class:`models.base.SpeechModel` contract. The lip features are computed once per batch
(``model.visual_features``) and reused by every decoder call.

Randomness: every utterance has its own ``torch.Generator`` seeded from
``derive_seed(seed, pair_id, algorithm)`` (``pair_id``: the mixture without its visual condition,
so the clean- and corrupted-video items of a mixture share their streams; see
:mod:`models.enhancement.batch`); draws are made per utterance with its own number of
frames (:func:`models.enhancement.batch.per_item_randn`), and draws nothing once it has left the
batch, so results do not depend on the batch (up to float rounding of batched matrix products).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.configtools import FieldError, check_fields
from benchmark.seeding import torch_generator
from models.enhancement.batch import Batch, per_item_randn
from models.enhancement.nmf import EPS, NMFState, init_nmf, is_cost, is_terms, m_step
from models.spectral import STFTConfig, istft
from models.vae import prior_visual_weight

log = logging.getLogger(__name__)


@dataclass
class EMConfig:
    """Settings shared by every EM algorithm (subclasses add their own, with published defaults)."""

    n_iter: int = field(default=100, metadata={"range": (1, None)})  # EM iterations (100 in all three reference repos)
    tol: Optional[float] = field(default=None, metadata={"range": (0.0, None)})  # stop an utterance when |delta cost| < tol (None: always n_iter)
    update: str = "WHg"  # which of W, H, g the M-step updates

    def __post_init__(self) -> None:
        """Types and the declared ranges of every field (:func:`benchmark.configtools.check_fields`)."""
        check_fields(self)
        if set(self.update) - set("WHg") or len(set(self.update)) != len(self.update):
            raise FieldError(type(self).__name__, "update", f"expected letters of 'WHg' (each at most once), got {self.update!r}")


@dataclass
class ItemResult:
    """What the EM returns for one utterance of a batch."""

    item_id: str
    estimate: np.ndarray  # float32 waveform at the original scale, length of the input
    traces: dict[str, np.ndarray] = field(default_factory=dict)


class EMContext:
    """Everything the E-step of one batch needs: model calls, observations, per-utterance RNG."""

    def __init__(self, model: Any, batch: Batch, *, algorithm: str, seed: int) -> None:
        self.model = model
        self.batch = batch
        self.P = batch.power  # [B, T, F]
        self.mask = batch.mask  # [B, T]
        self.maskf = batch.mask.to(self.P.dtype)
        self.device = self.P.device
        self.B, self.T, self.F = self.P.shape
        self.n_frames = batch.n_frames
        gen_dev = "cuda" if self.device.type == "cuda" else "cpu"
        self.gens = [torch_generator(seed, pid, algorithm, device=gen_dev) for pid in batch.pair_ids]
        # the true corruption level [B, T], only for models that use it (the oracle control)
        self.level_kw = {"level": batch.level} if getattr(model, "uses_level", False) else {}
        with torch.no_grad():
            self.vfeat = model.visual_features(batch.lips, batch.mask) if getattr(model, "is_audio_visual", False) else None
            prior_mu, prior_lv = model.prior(self.vfeat, batch.mask)
            mu, lv, enc_w = model.encode(self.P, self.vfeat, batch.mask, return_weights=True, **self.level_kw)
            # padded frames: z = 0 and a N(0, I) prior keep every decoder output and term finite there
            m3 = batch.mask.unsqueeze(-1)
            self.enc_mu = torch.where(m3, mu, torch.zeros_like(mu))
            self.enc_logvar = torch.where(m3, lv, torch.zeros_like(lv))
            self.prior_mu = torch.where(m3, prior_mu, torch.zeros_like(prior_mu))
            self.prior_logvar = torch.where(m3, prior_lv, torch.zeros_like(prior_lv))
            self.prior_prec = torch.exp(-self.prior_logvar)
            self.enc_weights = reduce_weights(enc_w)  # [B, T, 2] or None
        self.decoder_calls = 0

    #: attributes shared by every utterance of the batch (not sliced by :meth:`select`); every
    #: other tensor, list or dict attribute is batched along its first dimension
    SHARED = frozenset({"model", "device", "B", "T", "F", "decoder_calls"})

    def select(self, rows: torch.Tensor) -> "EMContext":
        """The context of the utterances ``rows`` (bool ``[B]``) only: converged utterances leave
        the batch (:func:`run_em`). Every batched attribute is sliced generically (tensors and
        lists on their first dimension, dicts value by value, the :class:`Batch` by its own
        ``select``), so a new batched field needs no code here; anything else that is not in
        :attr:`SHARED` is an error. The generators go along, so the random draws of the rows that
        stay do not change."""
        idx = rows.nonzero().flatten().tolist()
        new = object.__new__(type(self))
        for k, v in self.__dict__.items():
            new.__dict__[k] = v if k in self.SHARED else _select_rows(v, rows, idx, self.B, k)
        new.B = len(idx)
        return new

    # -- model --------------------------------------------------------------------------
    def decode_var(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled speech variance ``sigma^2(z)`` ``[..., B, T, F]``."""
        return self.decode_var_weights(z)[0]

    def decode_var_weights(self, z: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``sigma^2(z)`` ``[..., B, T, F]`` and the decoder fusion's weights of this call
        ``[B, T, 2]`` (detached, mean over the sample dims; None for a model without them)."""
        self.decoder_calls += 1
        d, w = self.model.decode(z, self.vfeat, self.mask, return_weights=True, **self.level_kw)
        w = reduce_weights(w)
        if torch.is_grad_enabled() or d._base is not None:
            return torch.exp(d), w
        return d.exp_(), w  # no autograd: the decoder's fresh output is exponentiated in place

    # -- probabilities ---------------------------------------------------------------------
    def nll_frames(self, Vs: torch.Tensor, st: NMFState, WH: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-frame negative log-likelihood ``sum_f log Vx + P / Vx`` ``[..., B, T]`` (padding: 0);
        ``WH``: the noise variance when the caller already has it."""
        WH = st.noise_var() if WH is None else WH
        g = st.g.unsqueeze(-1)
        if torch.is_grad_enabled() and (Vs.requires_grad or g.requires_grad):
            Vx = (g * Vs + WH).clamp_min(EPS)
            nll = (torch.log(Vx) + self.P / Vx).sum(-1)
        else:  # the MH hot path: the same value with one temporary and in-place passes
            nll = is_terms(self.P, WH, g, Vs).sum(-1)
        return torch.where(self.mask, nll, torch.zeros((), dtype=nll.dtype, device=nll.device))

    def decode_logvar(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's log-variance ``log sigma^2(z)`` (with autograd when enabled)."""
        self.decoder_calls += 1
        return self.model.decode(z, self.vfeat, self.mask, **self.level_kw)

    @torch.no_grad()
    def nll_grad_logvar(self, d: torch.Tensor, st: NMFState, WH: Optional[torch.Tensor] = None,
                        Vs: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Analytic gradient of ``sum_{t,f} (log Vx + P / Vx)`` (real frames) with respect to the
        decoder log-variance ``d``, ``Vx = g e^d + WH``::

            dL/dd = g e^d / Vx * (1 - P / Vx)

        The gradient-based E-steps (LDEM, PEEM, VEM) back-propagate it through the decoder only
        (``torch.autograd.grad(d, z, grad_outputs=...)``): the same gradient as autograd through the
        whole likelihood, without its graph of ``[..., B, T, F]`` temporaries or the ``log``.
        ``Vs``: ``exp(d)`` when the caller already has it (not modified)."""
        WH = st.noise_var() if WH is None else WH
        g = st.g.unsqueeze(-1)
        gVs = torch.exp(d).mul_(g) if Vs is None else torch.mul(Vs, g)
        inv = torch.add(gVs, WH).clamp_min_(EPS).reciprocal_()
        one_minus = torch.mul(self.P, inv).neg_().add_(1.0)
        return gVs.mul_(inv).mul_(one_minus).mul_(self.maskf.unsqueeze(-1))

    def nll_backward(self, d: torch.Tensor, wrt: list[torch.Tensor], st: NMFState, *, extra: Optional[torch.Tensor] = None,
                     WH: Optional[torch.Tensor] = None, Vs: Optional[torch.Tensor] = None, scale: float = 1.0) -> tuple[torch.Tensor, ...]:
        """Gradients w.r.t. ``wrt`` of ``scale * sum nll(d) + extra`` (``extra``: a scalar with its
        graph, e.g. the prior or KL terms): the likelihood part from :meth:`nll_grad_logvar`
        back-propagated through the decoder graph of ``d``, the rest by autograd."""
        gd = self.nll_grad_logvar(d.detach(), st, WH, Vs)
        if scale != 1.0:
            gd.mul_(scale)
        outs, grads = [d], [gd]
        if extra is not None:
            outs.append(extra)
            grads.append(torch.ones_like(extra))
        return torch.autograd.grad(outs, wrt, grad_outputs=grads)

    def prior_quad(self, z: torch.Tensor) -> torch.Tensor:
        """``sum_l (z - mu)^2 / sigma^2`` per frame ``[..., B, T]`` (twice the negative log prior)."""
        q = ((z - self.prior_mu) ** 2 * self.prior_prec).sum(-1)
        return torch.where(self.mask, q, torch.zeros((), dtype=q.dtype, device=q.device))

    # -- randomness -------------------------------------------------------------------------
    def randn(self, leading: tuple[int, ...] = (), tail: tuple[int, ...] = ()) -> torch.Tensor:
        return per_item_randn(self.gens, self.n_frames, self.T, leading=leading, tail=tail, device=self.device, dtype=self.P.dtype)

    def rand(self, leading: tuple[int, ...] = (), tail: tuple[int, ...] = ()) -> torch.Tensor:
        return per_item_randn(self.gens, self.n_frames, self.T, leading=leading, tail=tail, device=self.device, dtype=self.P.dtype, uniform=True)

    @property
    def latent_dim(self) -> int:
        return int(self.enc_mu.shape[-1])


def _select_rows(v: Any, rows: torch.Tensor, idx: list[int], B: int, name: str) -> Any:
    """``v`` restricted to the utterances ``rows`` (bool ``[B]``; ``idx`` its indices): a tensor
    or list/tuple with ``B`` entries on its first dimension, a dict of such, a :class:`Batch`, or
    None."""
    if v is None:
        return None
    if isinstance(v, Batch):
        return v.select(rows)
    if isinstance(v, dict):
        return {k: _select_rows(x, rows, idx, B, f"{name}[{k!r}]") for k, x in v.items()}
    if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == B:
        return v[rows]
    if isinstance(v, (list, tuple)) and len(v) == B:
        return type(v)(v[i] for i in idx)
    raise TypeError(f"EMContext.{name}: not batched on its first dimension ({B} utterances) and not declared shared")


def reduce_weights(w: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Fusion weights with sample dims ``[..., B, T, 2]`` reduced to ``[B, T, 2]`` (mean over samples)."""
    if w is None:
        return None
    w = w.detach()
    while w.dim() > 3:
        w = w.mean(0)
    return w


def select_optimizer(opt: torch.optim.Optimizer, params: list[torch.Tensor], rows: torch.Tensor) -> tuple[list[torch.Tensor], torch.optim.Optimizer]:
    """New leaf tensors ``p[rows]`` (batch on dim 0) for ``params`` and a copy of the optimizer
    (same settings) over them, with its per-element state sliced the same way; for elementwise
    optimizers such as Adam this continues each utterance's trajectory exactly."""
    new = [p.detach()[rows].clone().requires_grad_(p.requires_grad) for p in params]
    new_opt = type(opt)(new, **opt.defaults)
    for p, q in zip(params, new):
        state = opt.state.get(p)
        if state:
            new_opt.state[q] = {k: (v[rows].clone() if torch.is_tensor(v) and v.dim() > 0 else
                                    v.clone() if torch.is_tensor(v) else v) for k, v in state.items()}
    return new, new_opt


class EMAlgorithm:
    """Base of the EM algorithms; subclasses implement :meth:`init`, :meth:`e_step`, :meth:`final_latents`."""

    name = "em"
    config_cls: type = EMConfig

    def __init__(self, config: Optional[EMConfig] = None, **params: Any) -> None:
        if config is None:
            config = self.config_cls(**params)
        elif params:
            raise TypeError("give either a config or keyword parameters, not both")
        self.config = config

    def init(self, ctx: EMContext) -> None:
        """Initialise the latent state (default: the encoder mean of the noisy input)."""
        raise NotImplementedError

    def e_step(self, ctx: EMContext, st: NMFState, it: int) -> torch.Tensor:
        """Return unscaled speech variances ``[R, B, T, F]`` for the M-step."""
        raise NotImplementedError

    def select(self, rows: torch.Tensor) -> "EMAlgorithm":
        """A copy whose latent state keeps only the utterances ``rows`` (bool ``[B]``); ``self`` is
        left as it is (:func:`run_em` splits off converged utterances with it)."""
        raise NotImplementedError

    def final_latents(self, ctx: EMContext, st: NMFState) -> torch.Tensor:
        """Latent samples ``[R, B, T, L]`` whose Wiener gains are averaged in the final estimate."""
        raise NotImplementedError

    def iteration_traces(self) -> dict[str, torch.Tensor]:
        """Per-iteration ``[B]`` diagnostics of the last E-step (e.g. MH acceptance)."""
        return {}

    def final_traces(self) -> dict[str, torch.Tensor]:
        """Per-utterance diagnostics of the final estimate (``[B]`` or ``[B, T...]``)."""
        return {}


def run_em(
    algo: EMAlgorithm,
    model: Any,
    batch: Batch,
    *,
    rank: int = 10,
    seed: int = 0,
    stft_cfg: STFTConfig = STFTConfig(),
    progress: bool = False,
    nmf_init: Optional[NMFState] = None,
) -> list[ItemResult]:
    """Run ``algo`` on a batch; returns one :class:`ItemResult` per utterance (batch order).

    With ``config.tol`` an utterance whose cost changed by less than ``tol`` is finished at once
    (its final estimate is computed) and leaves the batch, so the others go on without carrying
    it: each utterance gets exactly the iterations and random draws it would get alone.

    ``nmf_init``: start from these noise factors/gains instead of the seeded random init (e.g.
    the true noise PSD with ``config.update = "g"``)."""
    cfg: EMConfig = algo.config
    ctx = EMContext(model, batch, algorithm=algo.name, seed=seed)
    if nmf_init is not None:
        st = NMFState(*(t.to(device=ctx.device, dtype=ctx.P.dtype) for t in (nmf_init.W, nmf_init.H, nmf_init.g)))
    else:
        st = init_nmf(batch.pair_ids, batch.n_frames, ctx.F, rank, seed=seed, device=ctx.device, dtype=ctx.P.dtype)
    algo.init(ctx)
    B = ctx.B
    rows = list(range(B))  # the original index of each row of the current (shrinking) batch
    costs = torch.full((cfg.n_iter, B), float("nan"), device=ctx.device)
    iter_traces: dict[str, torch.Tensor] = {}
    n_done = [0] * B
    out: list[Optional[ItemResult]] = [None] * B
    prev: Optional[torch.Tensor] = None
    for it in tqdm(range(cfg.n_iter), desc=f"{algo.name} EM", disable=not progress, leave=False):
        Vs = algo.e_step(ctx, st, it)
        with torch.no_grad():
            st = m_step(ctx.P, Vs.detach(), st, ctx.mask, update=cfg.update)
            c = is_cost(ctx.P, Vs.detach(), st, ctx.mask)
        idx = torch.tensor(rows, device=ctx.device)
        costs[it, idx] = c
        for k, v in algo.iteration_traces().items():
            buf = iter_traces.setdefault(k, torch.full((cfg.n_iter, B), float("nan"), device=ctx.device))
            buf[it, idx] = v.detach().to(buf.dtype)
        for r in rows:
            n_done[r] += 1
        if cfg.tol is None:
            continue
        done = converged(c, prev, cfg.tol)
        prev = c
        if bool(done.any()) and it < cfg.n_iter - 1:
            keep = ~done
            _finish(algo.select(done), ctx.select(done), st.select(done), [r for r, d in zip(rows, done.tolist()) if d],
                    out, costs, iter_traces, n_done, stft_cfg)
            if not bool(keep.any()):
                break
            algo, ctx, st, prev = algo.select(keep), ctx.select(keep), st.select(keep), prev[keep]
            rows = [r for r, k in zip(rows, keep.tolist()) if k]
    else:  # the iterations ran out (no break): finish the utterances still in the batch
        _finish(algo, ctx, st, rows, out, costs, iter_traces, n_done, stft_cfg)
    return [o for o in out if o is not None]


def converged(cost: torch.Tensor, prev: Optional[torch.Tensor], tol: Optional[float]) -> torch.Tensor:
    """Per-utterance stop test ``|cost - prev| < tol`` ``[B]`` on the Monte Carlo cost (all False
    for the first iteration or without ``tol``); shared by :func:`run_em` and the switching EM."""
    if prev is None or tol is None:
        return torch.zeros_like(cost, dtype=torch.bool)
    return (cost - prev).abs() < tol


def wiener_gain(Vs: torch.Tensor, g: torch.Tensor, WH: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The "probabilistic Wiener filter" gain ``[B, T, F]`` of the final estimate ``S = gain * X``:
    the gain ``g Vs_r / (g Vs_r + WH)`` of each sample ``Vs [R, B, T, F]`` averaged over the
    samples (``g [B, T]``, ``WH [B, T, F]``), uniformly or with per-frame ``weights [R, B, T]``
    (the switching EM: responsibility / samples of the component)."""
    gVs = g.unsqueeze(-1) * Vs
    ratio = gVs / (gVs + WH).clamp_min(EPS)
    if weights is None:
        return ratio.mean(0)
    return (weights.unsqueeze(-1) * ratio).sum(0)


def _finish(algo: EMAlgorithm, ctx: EMContext, st: NMFState, rows: list[int], out: list[Optional[ItemResult]],
            costs: torch.Tensor, iter_traces: dict[str, torch.Tensor], n_done: list[int], stft_cfg: STFTConfig) -> None:
    """Final estimate of the utterances of ``ctx`` (original indices ``rows``): latent samples of
    the algorithm, the averaged Wiener gain, the iSTFT and the traces, written into ``out``."""
    batch = ctx.batch
    with torch.no_grad():
        z = algo.final_latents(ctx, st).detach()
        Vs, dec_w = ctx.decode_var_weights(z)  # [R, B, T, F], [B, T, 2] or None
        # a visual prior p(z | v): its precision relative to N(0, I) as a reliability trace
        prior_w = prior_visual_weight(ctx.prior_logvar) if getattr(ctx.model, "uses_visual_prior", False) else None
        gain = wiener_gain(Vs, st.g, st.noise_var())  # [B, T, F]
        S = gain.to(batch.X.dtype) * batch.X
    final = algo.final_traces()
    for b, (item, r) in enumerate(zip(batch.items, rows)):
        tb = item.n_frames
        y = istft(S[b, :tb].cpu(), item.n_samples, stft_cfg).numpy().astype(np.float64) * item.scale
        nd = n_done[r]
        tr: dict[str, np.ndarray] = {
            "cost": costs[:nd, r].cpu().numpy().astype(np.float32),
            "frame_rate": np.float32(stft_cfg.frame_rate),
            "n_iter": np.int32(nd),
            # decoder passes made while this utterance was in the batch (each over all chains / samples)
            "decoder_calls": np.int32(ctx.decoder_calls),
        }
        for k, v in iter_traces.items():
            tr[k] = v[:nd, r].cpu().numpy().astype(np.float32)
        for k, v in final.items():
            tr[k] = v[b].cpu().numpy().astype(np.float32) if v.dim() > 1 else np.float32(v[b].item())
        if ctx.enc_weights is not None:
            tr["weights_encoder"] = ctx.enc_weights[b, :tb].cpu().numpy().astype(np.float32)
        if dec_w is not None:
            tr["weights_decoder"] = dec_w[b, :tb].cpu().numpy().astype(np.float32)
        if prior_w is not None:
            tr["weights_prior"] = prior_w[b, :tb].cpu().numpy().astype(np.float32)
        tr["gain_g"] = st.g[b, :tb].cpu().numpy().astype(np.float32)
        out[r] = ItemResult(item.item_id, y.astype(np.float32), tr)

