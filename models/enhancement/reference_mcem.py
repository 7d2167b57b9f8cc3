"""A straightforward per-utterance NumPy MCEM, structured like the published research code.

Reference for the speed benchmark only (:mod:`benchmark.perf`), written the way avse-vae's
``MCEM_algo.py`` is: one utterance at a time, NumPy float64 arrays in ``[F, N]`` layout, a
Python loop over the MH steps, the kept samples decoded again one by one for the M-step, the
decoder called through ``torch.from_numpy(...)`` / ``.numpy()`` round trips, and the lip
features **recomputed at every decoder call** (the published code feeds the raw lip frames to
the decoder each time). Same algorithm and defaults as :mod:`models.enhancement.mcem`
(including the 25 final samples, trap T1 of ``docs/references.md``), so outputs agree statistically, not bit for bit.
"""
from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np
import torch

from benchmark.seeding import rng as seeded_rng
from models.enhancement.mcem import MCEMConfig
from models.spectral import STFTConfig, istft, lips_to_stft_rate, stft


class ReferenceMCEM:
    """Published-code-style MCEM for one utterance (NumPy; see the module docstring)."""

    def __init__(self, model: Any, X: np.ndarray, lips: Optional[np.ndarray], cfg: MCEMConfig, rank: int, rng: np.random.Generator) -> None:
        self.model, self.cfg, self.rng = model, cfg, rng
        self.X = X  # complex [F, N]
        self.X_abs_2 = np.abs(X) ** 2
        self.F, self.N = X.shape
        self.lips = lips  # float32 [N, H, W] or None
        self.W = np.maximum(rng.random((self.F, rank)), np.finfo(float).eps)
        self.H = np.maximum(rng.random((rank, self.N)), np.finfo(float).eps)
        self.g = np.ones((1, self.N))
        self.mask = torch.ones(1, self.N, dtype=torch.bool)
        with torch.no_grad():
            vf = self._vfeat()
            mu, _ = model.encode(torch.from_numpy(self.X_abs_2.T[None].astype(np.float32)), vf, self.mask)
        self.Z = mu[0].numpy().T.astype(np.float64)  # [L, N]
        self.L = self.Z.shape[0]
        self.acceptance: list[float] = []

    def _vfeat(self):
        if self.lips is None or not getattr(self.model, "is_audio_visual", False):
            return None
        return self.model.visual_features(torch.from_numpy(self.lips[None]), self.mask)

    def decode(self, Z: np.ndarray) -> np.ndarray:
        """sigma^2 ``[F, N]`` of ``Z [L, N]`` (lip features recomputed, as in the published code)."""
        with torch.no_grad():
            vf = self._vfeat()
            lv = self.model.decode(torch.from_numpy(Z.T[None].astype(np.float32)), vf, self.mask)
        return np.exp(lv[0].numpy().astype(np.float64)).T

    def metropolis_hastings(self, n_iter_MH: int, burnin: int) -> np.ndarray:
        Z_sampled = np.zeros((self.L, self.N, n_iter_MH - burnin))
        cpt = 0
        acc = 0
        for n in range(n_iter_MH):
            Z_new = self.Z + np.sqrt(self.cfg.proposal_var) * self.rng.standard_normal((self.L, self.N))
            V_s_new = self.decode(Z_new)
            V_s = self.decode(self.Z)
            V_x_new = self.g * V_s_new + self.W @ self.H
            V_x = self.g * V_s + self.W @ self.H
            acc_prob = (np.sum(np.log(V_x) - np.log(V_x_new) + (1 / V_x - 1 / V_x_new) * self.X_abs_2, axis=0)
                        + 0.5 * np.sum(self.Z ** 2 - Z_new ** 2, axis=0))
            is_acc = np.log(self.rng.random(self.N)) < acc_prob
            self.Z[:, is_acc] = Z_new[:, is_acc]
            acc += int(is_acc.sum())
            if n > burnin - 1:
                Z_sampled[:, :, cpt] = self.Z
                cpt += 1
        self.acceptance.append(acc / (n_iter_MH * self.N))
        return Z_sampled

    def run(self) -> np.ndarray:
        cfg = self.cfg
        cost_after_M_step = np.zeros(cfg.n_iter)
        for n in range(cfg.n_iter):
            Z_sampled = self.metropolis_hastings(cfg.n_steps, cfg.burn_in)
            R = Z_sampled.shape[-1]
            V_s = np.zeros((self.F, self.N, R))
            for r in range(R):  # decode the samples one by one
                V_s[:, :, r] = self.decode(Z_sampled[:, :, r])
            V_x = self.g[:, :, None] * V_s + (self.W @ self.H)[:, :, None]
            self.W = self.W * ((self.X_abs_2 * np.sum(V_x ** -2, axis=-1)) @ self.H.T / (np.sum(V_x ** -1, axis=-1) @ self.H.T)) ** 0.5
            V_x = self.g[:, :, None] * V_s + (self.W @ self.H)[:, :, None]
            self.H = self.H * (self.W.T @ (self.X_abs_2 * np.sum(V_x ** -2, axis=-1)) / (self.W.T @ np.sum(V_x ** -1, axis=-1))) ** 0.5
            V_x = self.g[:, :, None] * V_s + (self.W @ self.H)[:, :, None]
            num = np.sum(self.X_abs_2 * np.sum(V_s * V_x ** -2, axis=-1), axis=0)
            den = np.sum(np.sum(V_s * V_x ** -1, axis=-1), axis=0)
            self.g = self.g * (num / den)[None] ** 0.5
            V_x = self.g[:, :, None] * V_s + (self.W @ self.H)[:, :, None]
            cost_after_M_step[n] = np.mean(np.log(V_x) + self.X_abs_2[:, :, None] / V_x)
            if n > 0 and cfg.tol is not None and np.abs(cost_after_M_step[n - 1] - cost_after_M_step[n]) < cfg.tol:
                break
        # final estimate: a new chain, all kept samples (T1: the 25 intended ones)
        Z_sampled = self.metropolis_hastings(cfg.final_steps, cfg.final_burn_in)
        R = Z_sampled.shape[-1]
        gain = np.zeros((self.F, self.N))
        for r in range(R):
            V_s = self.g * self.decode(Z_sampled[:, :, r])
            gain += V_s / (V_s + self.W @ self.H)
        return gain / R * self.X


def reference_mcem(model: Any, mixture: np.ndarray, lips: Optional[np.ndarray], fps: float, *, item_id: str = "item",
                   config: Optional[MCEMConfig] = None, rank: int = 10, seed: int = 0,
                   stft_cfg: STFTConfig = STFTConfig()) -> tuple[np.ndarray, float]:
    """Enhance one mixture with the reference MCEM; returns ``(estimate, seconds)``."""
    cfg = config or MCEMConfig()
    t0 = time.perf_counter()
    scale = float(np.max(np.abs(mixture)))
    X = stft(torch.from_numpy((mixture / scale).astype(np.float32)), stft_cfg).numpy().T.astype(np.complex128)
    lp = None
    if lips is not None and getattr(model, "is_audio_visual", False):
        lp = lips_to_stft_rate(lips, X.shape[1], fps, stft_cfg).astype(np.float32) / 255.0
    algo = ReferenceMCEM(model, X, lp, cfg, rank, seeded_rng(seed, item_id, "reference-mcem"))
    S = algo.run()
    y = istft(torch.from_numpy(S.T.astype(np.complex64)), mixture.size, stft_cfg).numpy() * scale
    return y.astype(np.float32), time.perf_counter() - t0
