"""The shared EM loop of the VAE + NMF enhancement, batched over utterances.

Test-time model (Leglaive et al. 2018; Sadeghi et al. 2020)::

    x_tf = sqrt(g_t) s_tf + b_tf,  s_tf | z_t, v ~ N_c(0, sigma^2_f(z_t, v)),  b_tf ~ N_c(0, (WH)_tf)

An algorithm (MCEM, VEM, PEEM, LDEM, and the switching EM of the mixture/switching VAEs) is an
:class:`EMAlgorithm` subclass that supplies the E-step (samples -> unscaled speech variances
``[R, B, T, F]``, with per-frame responsibility weights ``[R, B, T]`` when the speech prior has K > 1
components) and the variances of the final estimate; this module runs the one loop for all of
them (:func:`em_loop`): E-step, M-step (multiplicative NMF/gain updates, weighted when there are
weights, :mod:`models.enhancement.nmf`), cost trace, per-utterance convergence (a converged
utterance is finished and leaves the batch: every algorithm implements
:meth:`EMAlgorithm.select`), and the final "probabilistic Wiener filter"
``S = sum_r w_r [g Vs_r / (g Vs_r + WH)] X`` (``w_r = 1/R`` for a single model) followed by the iSTFT.

Nothing here knows which fusion is inside the model: it only calls the
:class:`models.base.SpeechModel` contract through the batch's :class:`EMContext`
(:mod:`models.enhancement.context`: observations, model calls, per-utterance random streams).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.configtools import FieldError, check_fields
from models.enhancement.batch import Batch
from models.enhancement.context import COMPILE_MODES, DECODER_DTYPES, MATMUL_PRECISIONS, EMContext, matmul_precision, reduce_weights  # noqa: F401  (re-exported)
from models.enhancement.nmf import NMFState, init_nmf, m_step, wiener_gain  # noqa: F401  (wiener_gain re-exported)
from models.spectral import STFTConfig, istft
from models.vae import prior_visual_weight

log = logging.getLogger(__name__)


@dataclass
class EMConfig:
    """Settings shared by every EM algorithm (subclasses add their own, with published defaults)."""

    n_iter: int = field(default=100, metadata={"range": (1, None)})  # EM iterations (100 in all three reference repos)
    tol: Optional[float] = field(default=None, metadata={"range": (0.0, None)})  # stop an utterance when |delta cost| < tol (None: always n_iter)
    update: str = "WHg"  # which of W, H, g the M-step updates
    # torch.compile of the hot step functions (EMContext.configure): off = the eager code, exactly
    compile: str = field(default="off", metadata={"choices": COMPILE_MODES})
    # "high": TF32 matrix products on CUDA (torch.set_float32_matmul_precision) during the EM
    matmul_precision: str = field(default="highest", metadata={"choices": MATMUL_PRECISIONS})
    # "bfloat16": the decoder runs under autocast to bf16, its output cast back to float32
    decoder_dtype: str = field(default="float32", metadata={"choices": DECODER_DTYPES})

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

    def sample_weights(self) -> Optional[torch.Tensor]:
        """Responsibility weights ``[R, B, T]`` of the last E-step's samples for the M-step and the
        cost (None: uniform, a single speech model; the switching EM: ``q(m_t = k) / R_k``)."""
        return None

    def final_variances(self, ctx: EMContext, st: NMFState) -> "FinalVariances":
        """The final estimate's speech variances (the hook of the finish step): by default the
        decoded :meth:`final_latents` with uniform weights and the decoder's fusion weights."""
        z = self.final_latents(ctx, st).detach()
        Vs, dec_w = ctx.decode_var_weights(z)  # [R, B, T, F], [B, T, 2] or None
        return FinalVariances(Vs, None, dec_w)

    def iteration_traces(self) -> dict[str, torch.Tensor]:
        """Per-iteration ``[B]`` diagnostics of the last E-step (e.g. MH acceptance)."""
        return {}

    def final_traces(self) -> dict[str, torch.Tensor]:
        """Per-utterance diagnostics of the final estimate (``[B]`` or ``[B, ...]``, kept whole)."""
        return {}

    def final_frame_traces(self) -> dict[str, torch.Tensor]:
        """Per-frame diagnostics of the final estimate ``[B, T, ...]`` (cut to each utterance's frames)."""
        return {}


@dataclass
class FinalVariances:
    """What the finish step filters with: speech variances ``Vs [R, B, T, F]``, their per-frame
    weights ``[R, B, T]`` (None: the mean over R) and the per-frame weights reported as
    ``weights_decoder`` ``[B, T, 2]`` (the decoder fusion's, or the switch posterior; None: none)."""

    Vs: torch.Tensor
    weights: Optional[torch.Tensor]
    decoder_weights: Optional[torch.Tensor]


#: ``finish(algo, ctx, st, rows, costs, iter_traces, n_done)``: the final estimate of the
#: utterances of ``ctx`` (original indices ``rows``) once they leave the loop
Finish = Callable[["EMAlgorithm", EMContext, NMFState, list[int], torch.Tensor, dict[str, torch.Tensor], list[int]], None]


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
    A composite model (the mixture/switching VAEs) runs here too, with the switching EM as
    ``algo`` (:class:`models.enhancement.switching.SwitchingEM`) and one context per component.

    ``nmf_init``: start from these noise factors/gains instead of the seeded random init (e.g.
    the true noise PSD with ``config.update = "g"``)."""
    ctx = EMContext(model, batch, algorithm=algo.name, seed=seed)
    if nmf_init is not None:
        st = NMFState(*(t.to(device=ctx.device, dtype=ctx.P.dtype) for t in (nmf_init.W, nmf_init.H, nmf_init.g)))
    else:
        st = init_nmf(batch.pair_ids, batch.n_frames, ctx.F, rank, seed=seed, device=ctx.device, dtype=ctx.P.dtype)
    out: list[Optional[ItemResult]] = [None] * ctx.B

    def finish(a: EMAlgorithm, c: EMContext, s: NMFState, rows: list[int], costs: torch.Tensor,
               iter_traces: dict[str, torch.Tensor], n_done: list[int]) -> None:
        _finish(a, c, s, rows, out, costs, iter_traces, n_done, stft_cfg)

    em_loop(algo, ctx, st, finish, progress=progress)
    return [o for o in out if o is not None]


def em_loop(algo: EMAlgorithm, ctx: EMContext, st: NMFState, finish: Finish, *, progress: bool = False) -> None:
    """The EM iterations of ``algo`` from the NMF start ``st`` on the batch of ``ctx``:
    ``algo.init``, then per iteration the E-step, the (responsibility-weighted) M-step and the
    cost ``[B]``; with ``config.tol`` each utterance whose cost changed by less than ``tol`` is
    handed to ``finish`` and leaves the batch (algorithm state, context and NMF factors are cut to
    the others); the rest are finished when the iterations run out.

    The options ``compile``, ``decoder_dtype`` (:meth:`EMContext.configure`) and
    ``matmul_precision`` (:func:`models.enhancement.context.matmul_precision`) of ``algo.config``
    hold for the whole loop, the finish steps included; all off by default (the eager float32
    code, bit-identical to the code before they existed)."""
    cfg: EMConfig = algo.config
    ctx.configure(compile=cfg.compile, decoder_dtype=cfg.decoder_dtype)
    with matmul_precision(cfg.matmul_precision):
        _em_iterations(algo, ctx, st, finish, progress=progress)


def _em_iterations(algo: EMAlgorithm, ctx: EMContext, st: NMFState, finish: Finish, *, progress: bool) -> None:
    """The body of :func:`em_loop` (its options already applied)."""
    cfg: EMConfig = algo.config
    kern = ctx.kernels
    algo.init(ctx)
    B = ctx.B
    rows = list(range(B))  # the original index of each row of the current (shrinking) batch
    costs = torch.full((cfg.n_iter, B), float("nan"), device=ctx.device, dtype=ctx.P.dtype)
    iter_traces: dict[str, torch.Tensor] = {}
    n_done = [0] * B
    prev: Optional[torch.Tensor] = None
    for it in tqdm(range(cfg.n_iter), desc=f"{algo.name} EM", disable=not progress, leave=False):
        Vs = algo.e_step(ctx, st, it)
        w = algo.sample_weights()
        with torch.no_grad():
            st = m_step(ctx.P, Vs.detach(), st, ctx.mask, update=cfg.update, weights=w, sums=kern.sums)
            c = kern.is_cost(ctx.P, Vs.detach(), st, ctx.mask, weights=w)
        idx = torch.tensor(rows, device=ctx.device)
        costs[it, idx] = c.to(costs.dtype)
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
            finish(algo.select(done), ctx.select(done), st.select(done), [r for r, d in zip(rows, done.tolist()) if d],
                   costs, iter_traces, n_done)
            if not bool(keep.any()):
                break
            algo, ctx, st, prev = algo.select(keep), ctx.select(keep), st.select(keep), prev[keep]
            rows = [r for r, k in zip(rows, keep.tolist()) if k]
    else:  # the iterations ran out (no break): finish the utterances still in the batch
        finish(algo, ctx, st, rows, costs, iter_traces, n_done)


def converged(cost: torch.Tensor, prev: Optional[torch.Tensor], tol: Optional[float]) -> torch.Tensor:
    """Per-utterance stop test ``|cost - prev| < tol`` ``[B]`` on the Monte Carlo cost (all False
    for the first iteration or without ``tol``)."""
    if prev is None or tol is None:
        return torch.zeros_like(cost, dtype=torch.bool)
    return (cost - prev).abs() < tol


def _finish(algo: EMAlgorithm, ctx: EMContext, st: NMFState, rows: list[int], out: list[Optional[ItemResult]],
            costs: torch.Tensor, iter_traces: dict[str, torch.Tensor], n_done: list[int], stft_cfg: STFTConfig) -> None:
    """Final estimate of the utterances of ``ctx`` (original indices ``rows``): the algorithm's
    final variances (:meth:`EMAlgorithm.final_variances`), the (weighted) Wiener gain, the iSTFT
    and the traces, written into ``out``."""
    batch = ctx.batch
    with torch.no_grad():
        fin = algo.final_variances(ctx, st)
        # a visual prior p(z | v): its precision relative to N(0, I) as a reliability trace
        prior_w = prior_visual_weight(ctx.prior_logvar) if getattr(ctx.model, "uses_visual_prior", False) else None
        gain = ctx.kernels.wiener_gain(fin.Vs, st.g, st.noise_var(), fin.weights)  # [B, T, F]
        S = gain.to(batch.X.dtype) * batch.X
    final, frame = algo.final_traces(), algo.final_frame_traces()
    calls = ctx.total_decoder_calls()
    for b, (item, r) in enumerate(zip(batch.items, rows)):
        tb = item.n_frames
        y = istft(S[b, :tb].cpu(), item.n_samples, stft_cfg).numpy().astype(np.float64) * item.scale
        nd = n_done[r]
        tr: dict[str, np.ndarray] = {
            "cost": costs[:nd, r].cpu().numpy().astype(np.float32),
            "frame_rate": np.float32(stft_cfg.frame_rate),
            "n_iter": np.int32(nd),
            # decoder passes made while this utterance was in the batch (each over all chains / samples)
            "decoder_calls": np.int32(calls),
        }
        for k, v in iter_traces.items():
            tr[k] = v[:nd, r].cpu().numpy().astype(np.float32)
        for k, v in final.items():
            tr[k] = v[b].cpu().numpy().astype(np.float32) if v.dim() > 1 else np.float32(v[b].item())
        for k, v in frame.items():
            tr[k] = v[b, :tb].cpu().numpy().astype(np.float32)
        if ctx.enc_weights is not None:
            tr["weights_encoder"] = ctx.enc_weights[b, :tb].cpu().numpy().astype(np.float32)
        if fin.decoder_weights is not None:
            tr["weights_decoder"] = fin.decoder_weights[b, :tb].cpu().numpy().astype(np.float32)
        if prior_w is not None:
            tr["weights_prior"] = prior_w[b, :tb].cpu().numpy().astype(np.float32)
        tr["gain_g"] = st.g[b, :tb].cpu().numpy().astype(np.float32)
        out[r] = ItemResult(item.item_id, y.astype(np.float32), tr)
