"""MCEM: Monte Carlo EM with a random-walk Metropolis-Hastings E-step (Sadeghi et al. 2020, avse-vae).

E-step: for every frame independently (the decoder is frame-wise for the MLP VAEs), a
random-walk MH chain on ``z_t`` with proposal ``N(z, proposal_var I)``, warm-started from the
previous chain state; ``n_steps`` steps of which the last ``n_steps - burn_in`` states are kept as
the R samples of the M-step. Acceptance (avse-vae ``MCEM_algo.py``)::

    log a = sum_f [log Vx - log Vx' + (1/Vx - 1/Vx') |x|^2] + 1/2 sum_l [(z-mu)^2 - (z'-mu)^2] / sigma^2

with the model prior ``(mu, sigma^2)`` (N(0, I), or the visual prior of an AV-CVAE).
Final estimate: a new chain of ``final_steps`` steps, burn-in ``final_burn_in``; **all**
``final_steps - final_burn_in`` = 25 kept samples are used (trap T1 of ``docs/references.md``: the published code decodes
only the first 10 of them by a loop-bound slip; we use the 25 it intended). Defaults as published:
proposal var 0.01, 40 steps / 30 burn-in, final 100 / 75, 100 EM iterations, stop when
|delta cost| < 1e-5 (per utterance). The MH acceptance rate of each iteration is traced.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

import torch

from benchmark.configtools import FieldError
from models.enhancement.em import EMAlgorithm, EMConfig, EMContext
from models.enhancement.nmf import NMFState
from models.enhancement.registry import ALGORITHMS
from models.enhancement.samplers import RandomWalkMH


@dataclass
class MCEMConfig(EMConfig):
    """MCEM settings (published defaults, avse-vae ``speech_enhancer_VAE.py``)."""

    tol: Optional[float] = field(default=1e-5, metadata={"range": (0.0, None)})
    proposal_var: float = field(default=0.01, metadata={"range": (0.0, None)})
    n_steps: int = field(default=40, metadata={"range": (1, None)})
    burn_in: int = field(default=30, metadata={"range": (0, None)})
    final_steps: int = field(default=100, metadata={"range": (1, None)})
    final_burn_in: int = field(default=75, metadata={"range": (0, None)})

    def __post_init__(self) -> None:
        super().__post_init__()  # types and declared ranges
        for burn, steps in (("burn_in", "n_steps"), ("final_burn_in", "final_steps")):
            if getattr(self, burn) >= getattr(self, steps):
                raise FieldError(type(self).__name__, burn, f"{getattr(self, burn)} must be smaller than "
                                 f"{steps} ({getattr(self, steps)}): no sample would be kept")


@ALGORITHMS.register("mcem")
class MCEM(EMAlgorithm):
    """Monte Carlo EM with random-walk Metropolis-Hastings sampling of z (avse-vae defaults)."""

    name = "mcem"
    config_cls = MCEMConfig

    def init(self, ctx: EMContext) -> None:
        self.z = ctx.enc_mu.detach().clone()  # chain state [B, T, L]
        with torch.no_grad():
            self.var = ctx.decode_var(self.z)
        self._acc: Optional[torch.Tensor] = None
        self._final_acc: Optional[torch.Tensor] = None

    @torch.no_grad()
    def _chain(self, ctx: EMContext, st: NMFState, n_steps: int, burn_in: int, keep: str):
        cfg: MCEMConfig = self.config
        WH = st.noise_var()  # fixed during the chain: computed once, not at every MH step

        def energy(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            var = ctx.decode_var(z)
            return ctx.nll_frames(var, st, WH=WH), ctx.prior_quad(z), var

        # the variances of the kept states: with a frame-local decoder (the variance of a frame
        # depends on its own latent only) they follow the accepted proposals, whose variances the
        # chain decoded anyway (one decoder pass at the end of the burn-in instead of one over all
        # kept states; the same values, each frame's variance computed from the same latent by the
        # same call shape); otherwise the kept states are decoded in one batched call, which gives
        # the variance of each state kept
        local = keep == "var" and bool(getattr(ctx.model, "frame_local_decoder", False))
        res = RandomWalkMH(cfg.proposal_var).run(
            self.z, (ctx.nll_frames(self.var, st, WH=WH), ctx.prior_quad(self.z)), energy, ctx.mask,
            lambda lead, tail=(): ctx.randn(leading=lead, tail=tail), lambda lead: ctx.rand(leading=lead), n_steps, burn_in,
            accept=ctx.kernels.mh_accept, track=ctx.decode_var if local else None)
        zs = res.kept
        if keep == "var":
            vs = res.tracked if local else ctx.decode_var(zs)
        else:
            vs = None
        self.z = res.z
        self.var = vs[-1] if vs is not None else ctx.decode_var(res.z)
        return (vs if keep == "var" else zs), RandomWalkMH.rate(res.accepted, ctx.mask, n_steps)

    def e_step(self, ctx: EMContext, st: NMFState, it: int) -> torch.Tensor:
        cfg: MCEMConfig = self.config
        Vs, self._acc = self._chain(ctx, st, cfg.n_steps, cfg.burn_in, keep="var")
        return Vs

    def final_latents(self, ctx: EMContext, st: NMFState) -> torch.Tensor:
        cfg: MCEMConfig = self.config
        zs, self._final_acc = self._chain(ctx, st, cfg.final_steps, cfg.final_burn_in, keep="z")
        return zs

    def select(self, rows: torch.Tensor) -> "MCEM":
        new = copy.copy(self)
        new.z, new.var = self.z[rows], self.var[rows]
        new._acc = None if self._acc is None else self._acc[rows]
        return new

    def iteration_traces(self) -> dict[str, torch.Tensor]:
        return {"acceptance": self._acc} if self._acc is not None else {}

    def final_traces(self) -> dict[str, torch.Tensor]:
        return {"final_acceptance": self._final_acc} if self._final_acc is not None else {}
