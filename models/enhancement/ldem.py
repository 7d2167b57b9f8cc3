"""LDEM: Langevin dynamics EM (Sadeghi & Serizel 2023; ps-rvae-se ``LDEM``, av-dkf ``LDEM``).

E-step: ``n_chains`` parallel chains per frame, each moved by ``n_steps`` unadjusted Langevin
steps ``z <- z - lr grad U(z) + sqrt(2 lr) xi`` on

    U(z) = sum_f (|x|^2 / Vx + log Vx) + prior_weight * sum_l (z - mu)^2 / sigma^2 + tv * sum_t |z_t - z_{t-1}|

with the model prior (N(0, I), or p(z|v) of an AV-CVAE). The chains start at the encoder mean
of the noisy input plus ``sqrt(eta) N(0, I)``, and get that kick again at the end of every E-step,
after the Langevin steps and before the variances of the M-step are decoded (trap T6 of ``docs/references.md``: an extra
exploration term; order as in ps-rvae-se ``LDEM.E_step``). The final estimate averages the Wiener
gain over the chains.

Cost: the variances decoded for the M-step are those of the chains where the next E-step's first
gradient is taken, so that decoder pass keeps its autograd graph and the gradient reuses it (one
decoder forward and one backward per Langevin step; the likelihood's gradient enters analytically
at the decoder output, :meth:`EMContext.nll_grad_logvar`).

Defaults: the ps-rvae-se demo values (10 chains, lr 5e-3, **1** Langevin step per EM iteration,
eta 0.01, tv 0, 100 iterations; trap T7: the av-dkf runner uses 5 chains, 20 steps, tv 5 -- pass
those through ``params`` to reproduce it). Deliberate deviation (trap T2): the published
objectives omit the 1/2 of the Gaussian prior; we use the exact negative log posterior
(``prior_weight = 0.5``); set ``prior_weight: 1.0`` for the published weighting.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Optional

import torch

from models.enhancement.em import EMAlgorithm, EMConfig, EMContext
from models.enhancement.nmf import NMFState
from models.enhancement.registry import ALGORITHMS
from models.enhancement.samplers import Langevin


@dataclass
class LDEMConfig(EMConfig):
    """LDEM settings (ps-rvae-se demo defaults; see the module docstring)."""

    n_chains: int = field(default=10, metadata={"range": (1, None)})
    lr: float = field(default=5e-3, metadata={"range": (0.0, None)})
    n_steps: int = field(default=1, metadata={"range": (1, None)})
    eta: float = field(default=0.01, metadata={"range": (0.0, None)})
    tv: float = field(default=0.0, metadata={"range": (0.0, None)})
    prior_weight: float = field(default=0.5, metadata={"range": (0.0, None)})


def total_variation(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_t |z_t - z_{t-1}|_1`` over pairs of real frames, summed over everything (av-dkf's
    ``tv`` term; per-utterance terms add up, so gradients stay per utterance)."""
    if z.shape[-2] < 2:
        return z.new_zeros(())
    pair = (mask[:, 1:] & mask[:, :-1]).to(z.dtype)
    return ((z[..., 1:, :] - z[..., :-1, :]).abs().sum(-1) * pair).sum()


def prior_energy(ctx: EMContext, z: torch.Tensor, prior_weight: float, tv: float) -> torch.Tensor:
    """The latent-only terms of ``U(z)``: weighted prior quadratic and total variation over time
    (summed; per-utterance terms add up, so gradients stay per utterance)."""
    U = prior_weight * ctx.prior_quad(z).sum()
    if tv > 0:
        U = U + tv * total_variation(z, ctx.mask)
    return U


def decode_with_graph(ctx: EMContext, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z', d)``: a leaf copy of ``z`` that requires grad and the decoder log-variance ``d(z')`` with its graph."""
    zz = z.detach().requires_grad_(True)
    with torch.enable_grad():
        return zz, ctx.decode_logvar(zz)


def energy_grad(ctx: EMContext, zz: torch.Tensor, d: torch.Tensor, st: NMFState, prior_weight: float, tv: float,
                WH: Optional[torch.Tensor] = None, Vs: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``grad_z U(z)`` for ``U = sum nll(d) + prior_energy(z)`` with ``(zz, d)`` from
    :func:`decode_with_graph`: the likelihood part analytic at the decoder output
    (:meth:`EMContext.nll_grad_logvar`), back-propagated through the decoder; the rest by autograd."""
    with torch.enable_grad():
        (grad,) = ctx.nll_backward(d, [zz], st, extra=prior_energy(ctx, zz, prior_weight, tv), WH=WH, Vs=Vs)
    return grad


@ALGORITHMS.register("ldem")
class LDEM(EMAlgorithm):
    """Langevin dynamics EM: a few unadjusted Langevin steps per EM iteration on parallel chains."""

    name = "ldem"
    config_cls = LDEMConfig

    def init(self, ctx: EMContext) -> None:
        cfg: LDEMConfig = self.config
        C = cfg.n_chains
        self.z = ctx.enc_mu.detach().unsqueeze(0).expand(C, -1, -1, -1).clone()
        self.z = self.z + math.sqrt(cfg.eta) * ctx.randn(leading=(C,), tail=(ctx.latent_dim,))
        self._graph: Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None  # (z, d(z), exp d) of the chains

    def select(self, rows: torch.Tensor) -> "LDEM":
        new = copy.copy(self)
        new.z = self.z[:, rows]
        # the kept decoder graph cannot be sliced into a new leaf: the next gradient decodes again
        # (the same values: the decoder is deterministic)
        new._graph = None
        return new

    def e_step(self, ctx: EMContext, st: NMFState, it: int) -> torch.Tensor:
        cfg: LDEMConfig = self.config
        WH = st.noise_var()

        def grad(z: torch.Tensor, s: int) -> torch.Tensor:
            if self._graph is not None:  # the decoder pass of the last E-step's variances, at this z
                zz, d, Vs = self._graph
            else:
                (zz, d), Vs = decode_with_graph(ctx, z), None
            self._graph = None
            return energy_grad(ctx, zz, d, st, cfg.prior_weight, cfg.tv, WH, Vs)

        z = Langevin(cfg.lr, cfg.n_steps, cfg.eta).run(self.z, grad, lambda lead, tail=(): ctx.randn(leading=lead, tail=tail),
                                                        move=ctx.kernels.langevin_move)
        self.z = z.detach()
        zz, d = decode_with_graph(ctx, self.z)
        Vs = torch.exp(d.detach())
        self._graph = (zz, d, Vs)  # reused by the next E-step's first gradient
        return Vs

    def final_latents(self, ctx: EMContext, st: NMFState) -> torch.Tensor:
        return self.z
