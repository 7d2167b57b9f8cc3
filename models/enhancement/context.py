"""The E-step context of one batch (:class:`EMContext`): observations, model calls and the
per-utterance random streams, for a single speech model or, one context per component, for a
composite (mixture/switching) model.

Shapes: ``P [B, T, F]`` observed power, ``mask [B, T]`` (real frames first), latents
``[..., B, T, L]``, speech variances ``[..., B, T, F]``, fusion weights ``[B, T, 2]``.

Randomness: every utterance has its own ``torch.Generator`` seeded from
``derive_seed(seed, pair_id, algorithm)`` (``pair_id``: the mixture without its visual condition,
so the clean- and corrupted-video items of a mixture share their streams; see
:mod:`models.enhancement.batch`); draws are made per utterance with its own number of
frames (:func:`models.enhancement.batch.per_item_randn`), and draws nothing once it has left the
batch, so results do not depend on the batch (up to float rounding of batched matrix products).
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from benchmark.seeding import torch_generator
from models.enhancement.batch import Batch, per_item_randn
from models.enhancement.nmf import EPS, NMFState, _sums, fused_is_cost, fused_sums, is_cost, is_terms, wiener_gain
from models.enhancement.samplers import langevin_move, mh_accept

#: ``EMConfig.compile``: off (eager), ``torch.compile`` default mode, or reduce-overhead (CUDA graphs)
COMPILE_MODES = ("off", "default", "reduce-overhead")
#: ``EMConfig.matmul_precision`` (``torch.set_float32_matmul_precision``; "high": TF32 on CUDA)
MATMUL_PRECISIONS = ("highest", "high")
#: ``EMConfig.decoder_dtype``: the decoder's compute dtype (bfloat16: under ``torch.autocast``)
DECODER_DTYPES = ("float32", "bfloat16")


def nll_frames_terms(P: torch.Tensor, WH: torch.Tensor, g: torch.Tensor, Vs: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
    """``sum_f log Vx + P / Vx`` per frame ``[..., B, T]``, 0 on padding (``g [B, T, 1]``; no
    autograd): the MH likelihood of :meth:`EMContext.nll_frames`."""
    nll = is_terms(P, WH, g, Vs).sum(-1)
    return torch.where(mask, nll, torch.zeros((), dtype=nll.dtype, device=nll.device))


def grad_logvar_terms(P: torch.Tensor, WH: torch.Tensor, g: torch.Tensor, maskf: torch.Tensor,
                      d: Optional[torch.Tensor], Vs: Optional[torch.Tensor]) -> torch.Tensor:
    """``g e^d / Vx * (1 - P / Vx)`` on real frames (``Vs = e^d`` when given, else from ``d``; ``g
    [B, T, 1]``, ``maskf [B, T]``): the elementwise part of :meth:`EMContext.nll_grad_logvar`, with
    two temporaries and in-place passes."""
    gVs = torch.exp(d).mul_(g) if Vs is None else torch.mul(Vs, g)
    inv = torch.add(gVs, WH).clamp_min_(EPS).reciprocal_()
    gVs.mul_(inv)
    one_minus = inv.mul_(P).neg_().add_(1.0)  # in inv's buffer: no third temporary
    return gVs.mul_(one_minus).mul_(maskf.unsqueeze(-1))


@dataclass(frozen=True)
class StepKernels:
    """The hot step functions of the EM (their eager definitions, or ``torch.compile`` of them):
    the MH likelihood (:func:`nll_frames_terms`) and acceptance
    (:func:`models.enhancement.samplers.mh_accept`), the Langevin move and the likelihood's
    gradient at the decoder output (:func:`grad_logvar_terms`), the M-step's sums over samples
    and the cost (:mod:`models.enhancement.nmf`), and the final Wiener gain. Every random number is
    drawn by the caller outside them, so a compiled kernel sees the same draws as the eager one."""

    mode: str
    nll_frames: Callable[..., torch.Tensor]
    mh_accept: Callable[..., Any]
    langevin_move: Callable[..., torch.Tensor]
    grad_logvar: Callable[..., torch.Tensor]
    sums: Callable[..., Any]
    is_cost: Callable[..., torch.Tensor]
    wiener_gain: Callable[..., torch.Tensor]


@functools.lru_cache(maxsize=None)
def step_kernels(mode: str = "off") -> StepKernels:
    """The kernels of one ``EMConfig.compile`` mode (cached: one set of compiled functions per
    process, reused by every batch).

    * ``off``: the eager functions, exactly the code the EM runs without the option.
    * ``default``: ``torch.compile`` (inductor) of each function: the elementwise chains are fused
      into one kernel each, and the sums over samples / the cost use the vectorised
      :func:`models.enhancement.nmf.fused_sums` / ``fused_is_cost`` (one pass over the samples, no
      ``[B, T, F]`` temporary per term); results equal the eager ones up to float reassociation.
      Shapes change between batches and when converged utterances leave a batch: dynamo compiles
      for the first shape, and with ``dynamic=None`` marks a dimension dynamic when it sees it
      change, so one more compilation covers every later batch size / length.
    * ``reduce-overhead``: the same with CUDA graphs (``mode="reduce-overhead"``, static shapes):
      one graph is recorded per distinct shape (batch size, frames, samples), i.e. once per
      batch and again each time utterances leave it; past dynamo's recompile limit
      (``torch._dynamo.config.recompile_limit``, 8 by default) a function runs eagerly for further
      shapes (same results). Each call marks a new CUDA-graph step and clones its outputs (the EM
      keeps them across calls, and a replay overwrites the graph's output memory): one extra copy
      of the outputs per call. On CPU no graph is captured: it compiles as ``default`` with static
      shapes (plus those copies). Not yet run on CUDA."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {COMPILE_MODES}, got {mode!r}")
    eager = StepKernels("off", nll_frames_terms, mh_accept, langevin_move, grad_logvar_terms, _sums, is_cost, wiener_gain)
    if mode == "off":
        return eager
    opts: dict[str, Any] = {"dynamic": None} if mode == "default" else {"mode": "reduce-overhead", "dynamic": False}

    def comp(fn: Callable[..., Any]) -> Callable[..., Any]:
        compiled = torch.compile(fn, **opts)
        if mode == "default":
            return compiled

        @functools.wraps(fn)
        def graphed(*args: Any, **kwargs: Any) -> Any:
            # CUDA-graph outputs live in a pool that the next replay overwrites, and the EM keeps
            # them across calls (chain states, kept samples): each call starts a new step and its
            # outputs are cloned at once
            torch.compiler.cudagraph_mark_step_begin()
            return _clone_outputs(compiled(*args, **kwargs))

        return graphed

    return StepKernels(mode, comp(nll_frames_terms), comp(mh_accept), comp(langevin_move), comp(grad_logvar_terms),
                       comp(fused_sums), comp(fused_is_cost), comp(wiener_gain))


def _clone_outputs(out: Any) -> Any:
    """A tensor, or each tensor of a tuple, cloned (None and other values as they are)."""
    if torch.is_tensor(out):
        return out.clone()
    if isinstance(out, tuple):
        return tuple(_clone_outputs(o) for o in out)
    return out


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """``torch.set_float32_matmul_precision(precision)`` for the duration of the block, restored
    after it ("high": TF32 matrix products on CUDA; "highest": exact float32, the default)."""
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"matmul precision must be one of {MATMUL_PRECISIONS}, got {precision!r}")
    before = torch.get_float32_matmul_precision()
    if precision == before:
        yield
        return
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


class EMContext:
    """Everything the E-step of one batch needs: model calls, observations, per-utterance RNG."""

    def __init__(self, model: Any, batch: Batch, *, algorithm: str, seed: int) -> None:
        """A composite model (``model.is_composite``: the mixture/switching VAEs) gets one context
        per component in :attr:`components` (``{role: EMContext}``, from
        ``model.component_models()``; their own streams unused) and no encoder/prior of its own;
        the E-step draws from this context's streams."""
        gen_dev = "cuda" if batch.power.device.type == "cuda" else "cpu"
        self._observe(model, batch, batch.power, batch.mask,
                      [torch_generator(seed, pid, algorithm, device=gen_dev) for pid in batch.pair_ids])
        self.components: dict[str, EMContext] = {}
        if getattr(model, "is_composite", False):
            self.components = {role: EMContext(m, batch, algorithm=algorithm, seed=seed)
                               for role, m in model.component_models().items()}
            self._attach(None, None, None)
        else:
            self._attach(model, batch.lips, batch.level)

    @classmethod
    def from_tensors(cls, power: torch.Tensor, mask: torch.Tensor, seeds: Sequence[int], *, model: Any = None,
                     lips: Optional[torch.Tensor] = None) -> "EMContext":
        """A context without a :class:`Batch` (the switching EM on given components, e.g. toys):
        observations ``power [B, T, F]`` (zeroed on padding), ``mask [B, T]`` (real frames first),
        one generator per utterance seeded with ``seeds``, and optionally a speech ``model``
        (with ``lips [B, T, ...]`` for an audio-visual one)."""
        gen_dev = "cuda" if power.device.type == "cuda" else "cpu"
        gens = []
        for s in seeds:
            gen = torch.Generator(device=gen_dev)
            gen.manual_seed(int(s))
            gens.append(gen)
        new = object.__new__(cls)
        new._observe(model, None, power * mask[..., None], mask, gens)
        new.components = {}
        new._attach(model, lips, None)
        return new

    def _attach(self, model: Any, lips: Optional[torch.Tensor], level: Optional[torch.Tensor]) -> None:
        """The model's part: visual features once, the prior and the encoder on the noisy power
        (padded frames: z = 0 and a N(0, I) prior keep every decoder output and term finite there);
        all None without a model (a composite's own context)."""
        self.level_kw: dict[str, torch.Tensor] = {}
        if model is None:
            self.vfeat = self.enc_mu = self.enc_logvar = self.prior_mu = self.prior_logvar = self.prior_prec = None
            self.enc_weights = None
            return
        # the true corruption level [B, T], only for models that use it (the oracle control)
        if level is not None and getattr(model, "uses_level", False):
            self.level_kw = {"level": level}
        with torch.no_grad():
            self.vfeat = model.visual_features(lips, self.mask) if getattr(model, "is_audio_visual", False) else None
            prior_mu, prior_lv = model.prior(self.vfeat, self.mask)
            mu, lv, enc_w = model.encode(self.P, self.vfeat, self.mask, return_weights=True, **self.level_kw)
            m3 = self.mask.unsqueeze(-1)
            self.enc_mu = torch.where(m3, mu, torch.zeros_like(mu))
            self.enc_logvar = torch.where(m3, lv, torch.zeros_like(lv))
            self.prior_mu = torch.where(m3, prior_mu, torch.zeros_like(prior_mu))
            self.prior_logvar = torch.where(m3, prior_lv, torch.zeros_like(prior_lv))
            self.prior_prec = torch.exp(-self.prior_logvar)
            self.enc_weights = reduce_weights(enc_w)  # [B, T, 2] or None

    def _observe(self, model: Any, batch: Optional[Batch], power: torch.Tensor, mask: torch.Tensor,
                 gens: list[torch.Generator]) -> None:
        self.model = model
        self.batch = batch
        self.P = power  # [B, T, F]
        self.mask = mask.bool()  # [B, T]
        self.maskf = self.mask.to(self.P.dtype)
        self.device = self.P.device
        self.B, self.T, self.F = self.P.shape
        self.n_frames = [int(n) for n in self.mask.sum(-1).tolist()] if batch is None else batch.n_frames
        self.gens = gens
        self.decoder_calls = 0
        self.kernels = step_kernels("off")
        self.decoder_dtype: Optional[torch.dtype] = None  # None: the model's own (float32)

    def configure(self, *, compile: str = "off", decoder_dtype: str = "float32") -> None:
        """The EM options of this context and of its components (``EMConfig.compile``,
        ``EMConfig.decoder_dtype``): which step kernels run (:func:`step_kernels`) and whether the
        decoder runs under bf16 autocast (its output cast back to the observations' dtype)."""
        if decoder_dtype not in DECODER_DTYPES:
            raise ValueError(f"decoder dtype must be one of {DECODER_DTYPES}, got {decoder_dtype!r}")
        self.kernels = step_kernels(compile)
        self.decoder_dtype = None if decoder_dtype == "float32" else getattr(torch, decoder_dtype)
        for c in self.components.values():
            c.configure(compile=compile, decoder_dtype=decoder_dtype)

    def total_decoder_calls(self) -> int:
        """Decoder passes of this context and of its components."""
        return self.decoder_calls + sum(c.decoder_calls for c in self.components.values())

    #: attributes shared by every utterance of the batch (not sliced by :meth:`select`); every
    #: other tensor, list or dict attribute is batched along its first dimension
    SHARED = frozenset({"model", "device", "B", "T", "F", "decoder_calls", "kernels", "decoder_dtype"})

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
    def _decode(self, z: torch.Tensor, **kw: Any) -> Any:
        """``model.decode`` on this batch: as it is, or under bf16 autocast with the log-variance
        cast back to the observations' dtype (``decoder_dtype``; the fusion weights stay as the
        model returns them, :func:`reduce_weights` averages them)."""
        if self.decoder_dtype is None:
            return self.model.decode(z, self.vfeat, self.mask, **kw, **self.level_kw)
        with torch.autocast(self.device.type, dtype=self.decoder_dtype):
            out = self.model.decode(z, self.vfeat, self.mask, **kw, **self.level_kw)
        if isinstance(out, tuple):
            d, w = out
            return d.to(self.P.dtype), (None if w is None else w.to(self.P.dtype))
        return out.to(self.P.dtype)

    def decode_var(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled speech variance ``sigma^2(z)`` ``[..., B, T, F]``."""
        return self.decode_var_weights(z)[0]

    def decode_var_weights(self, z: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``sigma^2(z)`` ``[..., B, T, F]`` and the decoder fusion's weights of this call
        ``[B, T, 2]`` (detached, mean over the sample dims; None for a model without them)."""
        self.decoder_calls += 1
        d, w = self._decode(z, return_weights=True)
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
            return torch.where(self.mask, nll, torch.zeros((), dtype=nll.dtype, device=nll.device))
        # the MH hot path: the same value with one temporary and in-place passes (or its compiled kernel)
        return self.kernels.nll_frames(self.P, WH, g, Vs, self.mask)

    def decode_logvar(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's log-variance ``log sigma^2(z)`` (with autograd when enabled)."""
        self.decoder_calls += 1
        return self._decode(z)

    def decode_logvar_weights(self, z: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``log sigma^2(z)`` ``[..., B, T, F]`` and the decoder fusion's weights ``[B, T, 2]`` (detached;
        None for a model without them) of one pass."""
        self.decoder_calls += 1
        d, w = self._decode(z, return_weights=True)
        return d, reduce_weights(w)

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
        return self.kernels.grad_logvar(self.P, WH, st.g.unsqueeze(-1), self.maskf, d, Vs)

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
    if isinstance(v, (Batch, EMContext)):
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
