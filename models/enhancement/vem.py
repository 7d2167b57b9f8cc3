"""VEM: variational EM with a Gaussian q(z) optimised at test time (after ps-rvae-se ``VEM``).

q(z_t) = N(m_t, diag exp(l_t)), initialised from the encoder on the noisy input; each E-step
takes ``n_grad_steps`` Adam steps on the negative ELBO, estimated with ``n_mc`` reparameterised
samples::

    -ELBO = E_q[ sum_f (|x|^2 / Vx + log Vx) ] + KL(q || p(z))     (p: the model prior)

then ``n_samples`` fresh samples of q enter the M-step; the final Wiener gain is averaged over
``final_samples`` samples of q. Defaults as published (lr 5e-3, 1 gradient step and 1 sample per
E-step, 1 sample for the final filter, 100 iterations). Deliberate deviation: the published VEM
fine-tunes the *encoder weights* per utterance; here q's parameters are free per frame
(initialised by the encoder), which is the same family of posteriors without sharing weights
across the utterances of a batch (a shared encoder would couple them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from models.enhancement.em import EMAlgorithm, EMConfig, EMContext, freeze_inactive
from models.enhancement.nmf import NMFState
from models.enhancement.registry import ALGORITHMS


@dataclass
class VEMConfig(EMConfig):
    """VEM settings (ps-rvae-se defaults; see the module docstring)."""

    lr: float = field(default=5e-3, metadata={"range": (0.0, None)})
    n_grad_steps: int = field(default=1, metadata={"range": (1, None)})
    n_mc: int = field(default=1, metadata={"range": (1, None)})
    n_samples: int = field(default=1, metadata={"range": (1, None)})
    final_samples: int = field(default=1, metadata={"range": (1, None)})


@ALGORITHMS.register("vem")
class VEM(EMAlgorithm):
    """Variational EM: Gaussian q(z) from the encoder, refined by reparameterised ELBO gradients."""

    name = "vem"
    config_cls = VEMConfig

    def init(self, ctx: EMContext) -> None:
        cfg: VEMConfig = self.config
        self.m = ctx.enc_mu.detach().clone().requires_grad_(True)
        self.lv = ctx.enc_logvar.detach().clone().requires_grad_(True)
        self.opt = torch.optim.Adam([self.m, self.lv], lr=cfg.lr)

    def _sample(self, ctx: EMContext, n: int) -> torch.Tensor:
        eps = ctx.randn(leading=(n,), tail=(ctx.latent_dim,))
        return self.m + torch.exp(0.5 * self.lv) * eps

    def e_step(self, ctx: EMContext, st: NMFState, it: int, active: Optional[torch.Tensor]) -> torch.Tensor:
        cfg: VEMConfig = self.config
        for _ in range(cfg.n_grad_steps):
            old_m, old_lv = self.m.detach().clone(), self.lv.detach().clone()
            with torch.enable_grad():
                z = self._sample(ctx, cfg.n_mc)
                rec = ctx.nll_frames(ctx.decode_var(z), st).sum() / cfg.n_mc
                kl = 0.5 * (((torch.exp(self.lv) + (self.m - ctx.prior_mu) ** 2) * ctx.prior_prec)
                            - 1.0 - self.lv - torch.log(ctx.prior_prec)).sum(-1)
                loss = rec + (kl * ctx.maskf).sum()
                gm, glv = torch.autograd.grad(loss, [self.m, self.lv])
            self.m.grad, self.lv.grad = gm, glv
            self.opt.step()
            if active is not None:
                with torch.no_grad():
                    self.m.copy_(freeze_inactive(self.m, old_m, active))
                    self.lv.copy_(freeze_inactive(self.lv, old_lv, active))
        with torch.no_grad():
            return ctx.decode_var(self._sample(ctx, cfg.n_samples))

    def final_latents(self, ctx: EMContext, st: NMFState) -> torch.Tensor:
        with torch.no_grad():
            return self._sample(ctx, self.config.final_samples)
