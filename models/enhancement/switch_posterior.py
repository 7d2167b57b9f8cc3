"""The switch of the mixture / switching VAEs: its configuration, its parameters and its exact
posterior given per-frame emission scores (``docs/switching_em.md`` sections 1, 2b, 2c).

Pure tensor functions, no model: ``log_emit [B, T, K]`` (the per-frame evidence of each of the
``K`` components) and a frame mask in, ``q(m)`` out. An i.i.d. mixture is a per-frame softmax
(:func:`mixture_posterior`); a Markov switch is an HMM, solved by :func:`forward_backward`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

#: switch state indices (column order of every weight array: 0 = audio, 1 = visual)
AUDIO, VISUAL = 0, 1

#: per-frame evidence estimates of the conditional switch step (:class:`SwitchConfig`)
EVIDENCE_KINDS = ("laplace", "log_joint")


@dataclass
class SwitchConfig:
    """The switch model: i.i.d. per-frame mixture or a two-state Markov chain."""

    kind: str = field(default="mixture", metadata={"choices": ("mixture", "markov")})
    prior_av: float = field(default=0.5, metadata={"range": (0.0, 1.0)})  # pi = P(m_t = AV) (mixture), P(m_1 = AV) (markov)
    stay_prob: float = field(default=0.95, metadata={"range": (0.0, 1.0)})  # markov: P(m_t = m_{t-1})
    learn: bool = False  # M-step update of pi (mixture) / the transition matrix (markov), per utterance
    # "conditional": each component's latent is sampled from its own posterior given that it
    # generated the frame, and the switch compares the per-frame evidences (default; see
    # docs/switching_em.md 2a'); "tempered": the mean-field factor with the likelihood tempered
    # by the responsibility (prone to winner-takes-all collapse with real VAEs)
    latent_posterior: str = field(default="conditional", metadata={"choices": ("conditional", "tempered")})
    # conditional variant only: the per-frame evidence log p(x_t | m_t = k) of the switch step.
    # "laplace": log joint at the mode estimate (the samples' mean refined by Gauss-Newton steps)
    # + the entropy of the Laplace (Gauss-Newton) approximation of the component's posterior
    # (default; docs/switching_em.md 2a'');
    # "log_joint": the mean log joint alone (the former score, biased towards the component with
    # the narrower posterior)
    evidence: str = field(default="laplace", metadata={"choices": EVIDENCE_KINDS})
    # "laplace" only: Gauss-Newton steps from the samples' mean towards the mode (each costs one
    # more precision, i.e. 2 L decoded samples per component and E-step); 2 by default, 0 takes
    # the samples' mean as the mode (cheaper, a residual bias of ~0.3 nat/frame on the
    # equally-good toy of docs/switching_em.md instead of < 0.1)
    newton_steps: int = field(default=2, metadata={"range": (0, 10)})

    def __post_init__(self) -> None:
        if self.kind not in ("mixture", "markov"):
            raise ValueError(f"SwitchConfig.kind: expected 'mixture' or 'markov', got {self.kind!r}")
        if self.latent_posterior not in ("conditional", "tempered"):
            raise ValueError(f"SwitchConfig.latent_posterior: expected 'conditional' or 'tempered', got {self.latent_posterior!r}")
        if self.evidence not in EVIDENCE_KINDS:
            raise ValueError(f"SwitchConfig.evidence: expected one of {EVIDENCE_KINDS}, got {self.evidence!r}")
        for name in ("prior_av", "stay_prob"):
            v = getattr(self, name)
            if not (0.0 < v < 1.0):
                raise ValueError(f"SwitchConfig.{name}: expected a probability strictly in (0, 1), got {v!r}")


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
    """``q(m)`` for either switch kind: ``(post [B,T,2], pair or None, log_z [B])``.

    Computed in float64 (the emissions are sums over hundreds of bins, ~1e4 in magnitude, so a
    float32 normalisation would lose the third decimal of the posterior), returned in the
    emissions' dtype."""
    dt = log_emit.dtype
    le = log_emit.double()
    if params.kind == "mixture":
        post, lz = mixture_posterior(le, params.log_init.double(), mask)
        return post.to(dt), None, lz.to(dt)
    post, pair, lz = forward_backward(le, params.log_init.double(), params.log_trans.double(), mask)
    return post.to(dt), pair.to(dt), lz.to(dt)


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
