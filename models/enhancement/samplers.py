"""The latent samplers shared by the EM algorithms: random-walk Metropolis-Hastings (``mcem`` and
the switching EM with ``mcem``) and unadjusted Langevin dynamics (``ldem`` and the switching EM
with ``ldem``).

A sampler owns the moves, the order of its random draws and the acceptance bookkeeping; the
caller owns the model: it passes the energy (MH) or its gradient (Langevin) as a function of the
latent, and the draws as tensors made from its per-utterance generators. Latents are
``z [..., B, T, L]`` (leading dims: chains), energies ``[..., B, T]``, ``mask [B, T]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

#: ``randn(leading, tail)`` / ``rand(leading)``: per-utterance draws ``[*leading, B, T, *tail]``
#: (:func:`models.enhancement.batch.per_item_randn`)
Draw = Callable[..., torch.Tensor]

#: one MH acceptance step (:func:`mh_accept`, or its compiled form)
Accept = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]

#: one Langevin move without the gradient (:func:`langevin_move`, or its compiled form)
Move = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]

#: the energy of a frame as two terms ``(likelihood, prior quadratic)``, each ``[..., B, T]``:
#: ``U = lik + prior_weight * quad``
Energy = tuple[torch.Tensor, torch.Tensor]


@dataclass
class MHResult:
    """The outcome of one MH chain run."""

    z: torch.Tensor  # [..., B, T, L] last state
    energy: Energy  # its energy terms
    kept: torch.Tensor  # [n_steps - burn_in, ..., B, T, L] the states after burn-in
    accepted: torch.Tensor  # [..., B, T] number of accepted moves (0 on padding)
    #: [n_steps - burn_in, ..., B, T, D] the tracked quantity of each kept state (``run(track=...)``)
    tracked: Optional[torch.Tensor] = None


class RandomWalkMH:
    """Random-walk Metropolis-Hastings on every frame independently (as in the published MCEM):
    proposal ``z' = z + N(0, proposal_var I)``, accepted when ``log u < U(z) - U(z')`` with
    ``U = lik + prior_weight * quad``.

    Draws, per utterance: all proposal steps ``[n_steps, ..., L]``, then all uniforms
    ``[n_steps, ...]`` (one call each, so the stream does not depend on the chain's length in
    between)."""

    def __init__(self, proposal_var: float, prior_weight: float = 0.5) -> None:
        self.proposal_var = float(proposal_var)
        self.prior_weight = float(prior_weight)

    def run(self, z: torch.Tensor, energy: Energy, energy_fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
            mask: torch.Tensor, randn: Draw, rand: Draw, n_steps: int, burn_in: int, *, accept: Optional[Accept] = None,
            track: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> MHResult:
        """``n_steps`` moves from ``z`` (energy terms ``energy``; ``energy_fn(z')`` gives those of a
        proposal), keeping the states after ``burn_in``. Padding frames never move. ``accept``: the
        acceptance step (default :func:`mh_accept`; the EM passes its compiled form when
        ``EMConfig.compile`` is on). Every random number is drawn before the loop, outside it.

        ``track``: a per-frame quantity of a state, ``track(z) -> [..., B, T, D]`` (MCEM: the decoded
        speech variance), which ``energy_fn`` then returns as a third element for its proposal
        (it computes it anyway). ``MHResult.tracked`` holds it for every kept state: ``track`` is
        called once, on the state at the end of the burn-in, and from there the quantity follows
        the accepted moves frame by frame (:func:`select_frames`), instead of a second pass (e.g.
        a decoder call) over the kept states. Valid only when a frame's quantity depends on that
        frame's latent alone (a frame-local decoder,
        :attr:`models.base.SpeechModel.frame_local_decoder`)."""
        lead, L = tuple(z.shape[:-3]), z.shape[-1]
        steps = randn((n_steps,) + lead, (L,)) * math.sqrt(self.proposal_var)
        logu = torch.log(rand((n_steps,) + lead).clamp_min(1e-30))
        lik, quad = energy
        kept, kept_q = [], []
        q: Optional[torch.Tensor] = track(z) if track is not None and burn_in == 0 else None
        n_acc = torch.zeros_like(lik)
        w = self.prior_weight
        accept = mh_accept if accept is None else accept
        for m in range(n_steps):
            zp = z + steps[m]
            out = energy_fn(zp)
            z, lik, quad, n_acc, acc = accept(z, zp, lik, out[0], quad, out[1], logu[m], mask, n_acc, w)
            if track is not None:
                if m == burn_in - 1:
                    q = track(z)
                elif m >= burn_in:
                    q = select_frames(acc, out[2], q)
                    kept_q.append(q)
            if m >= burn_in:
                kept.append(z)
        return MHResult(z, (lik, quad), torch.stack(kept), n_acc, torch.stack(kept_q) if kept_q else None)

    @staticmethod
    def rate(accepted: torch.Tensor, mask: torch.Tensor, n_steps: int) -> torch.Tensor:
        """Acceptance rate per utterance ``[B]`` over real frames, chains and steps (NaN for an
        utterance without a real frame)."""
        maskf = mask.to(accepted.dtype)
        n_chains = math.prod(accepted.shape[:-2])
        acc = accepted.reshape(-1, *accepted.shape[-2:]).sum(0)
        n_real = maskf.sum(-1) * n_chains * n_steps
        rate = (acc * maskf).sum(-1) / n_real.clamp_min(1)
        return torch.where(n_real > 0, rate, torch.full_like(rate, float("nan")))


class Langevin:
    """Unadjusted Langevin dynamics ``z <- z - lr grad U(z) + sqrt(2 lr) xi`` (Sadeghi & Serizel
    2023), with the optional ``sqrt(eta) N(0, I)`` kick after the steps (trap T6 of
    ``docs/references.md``; ps-rvae-se ``LDEM.E_step`` order).

    Draws, per utterance: all step noises ``[n_steps, ..., L]`` at once, then the kick."""

    def __init__(self, lr: float, n_steps: int, eta: float = 0.0) -> None:
        self.lr = float(lr)
        self.n_steps = int(n_steps)
        self.eta = float(eta)

    def run(self, z: torch.Tensor, grad_fn: Callable[[torch.Tensor, int], torch.Tensor], randn: Draw, *,
            move: Optional[Move] = None) -> torch.Tensor:
        """``n_steps`` moves from ``z``; ``grad_fn(z, s)`` is ``grad U`` at step ``s``. Padding
        frames: the draws are zero there and the caller's gradient is zero there, so they stay.
        ``move``: the elementwise part of a step (default :func:`langevin_move`; its compiled form
        when ``EMConfig.compile`` is on); the noise is drawn before the loop, outside it."""
        lead, L = tuple(z.shape[:-3]), z.shape[-1]
        noise = randn((self.n_steps,) + lead, (L,)) * math.sqrt(2 * self.lr)
        move = langevin_move if move is None else move
        for s in range(self.n_steps):
            z = move(z, grad_fn(z, s), noise[s], self.lr)
        return self.kick(z, randn)

    def kick(self, z: torch.Tensor, randn: Draw) -> torch.Tensor:
        """``z + sqrt(eta) N(0, I)`` (``z`` unchanged, nothing drawn, when ``eta = 0``)."""
        if self.eta <= 0:
            return z
        return z + math.sqrt(self.eta) * randn(tuple(z.shape[:-3]), (z.shape[-1],))


def mh_accept(z: torch.Tensor, zp: torch.Tensor, lik: torch.Tensor, likp: torch.Tensor, quad: torch.Tensor,
              quadp: torch.Tensor, logu: torch.Tensor, mask: torch.Tensor, n_acc: torch.Tensor,
              prior_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One MH acceptance step for every frame: accept the proposal ``zp`` where
    ``log u < lik - lik' + prior_weight (quad - quad')`` on real frames; returns the new
    ``(z, lik, quad, n_acc)`` and the decisions ``acc`` (``z [..., B, T, L]``, the rest ``[..., B,
    T]``, ``acc`` bool). A pure function, so ``torch.compile`` can fuse it
    (:func:`models.enhancement.context.step_kernels`)."""
    log_a = lik - likp + prior_weight * (quad - quadp)
    acc = (logu < log_a) & mask
    z = torch.where(acc.unsqueeze(-1), zp, z)
    lik = torch.where(acc, likp, lik)
    quad = torch.where(acc, quadp, quad)
    return z, lik, quad, n_acc + acc.to(n_acc.dtype), acc


def select_frames(acc: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` on the frames where ``acc [..., B, T]`` is True, ``old`` elsewhere (``[..., B, T, D]``):
    a per-frame quantity following the accepted MH moves."""
    return torch.where(acc.unsqueeze(-1), new, old)


def langevin_move(z: torch.Tensor, grad: torch.Tensor, noise: torch.Tensor, lr: float) -> torch.Tensor:
    """``z - lr grad + noise``: the elementwise part of one Langevin step (``noise`` already scaled
    by ``sqrt(2 lr)``)."""
    return z - lr * grad + noise
