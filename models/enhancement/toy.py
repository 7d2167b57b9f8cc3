"""A tiny frame-wise VAE and synthetic "speech" for the enhancement tests and the speed benchmark.

SYNTHETIC STAND-IN, not a research model: :class:`ToyVAE` follows the
:class:`models.base.SpeechModel` contract (optionally audio-visual with a gated fusion that
reports per-frame weights) so the EM algorithms can be tested and timed without the real
models or a corpus. :func:`synth_utterance` makes harmonic vowel-like syllables with silent
gaps and a lip video whose mouth opening follows the syllable envelope and vowel (so the video
carries information about the audio).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import nn

from models.base import DecoderOutput, EncoderOutput, SpeechModel

# formant pairs (Hz) of a few vowels and the mouth opening each one gets in the toy video
_VOWELS = [((730, 1090), 1.0), ((270, 2290), 0.25), ((300, 870), 0.35), ((530, 1840), 0.6), ((570, 840), 0.7)]


def synth_utterance(rng: np.random.Generator, duration_s: float = 2.0, sr: int = 16000, fps: float = 25.0, lip_size: int = 16):
    """Synthetic (clean audio float32, lips uint8 ``N x lip_size x lip_size``) pair."""
    n = int(duration_s * sr)
    x = np.zeros(n)
    opening = np.zeros(n)
    t = 0
    while t < n:
        gap = int(rng.uniform(0.05, 0.15) * sr)
        dur = int(rng.uniform(0.12, 0.3) * sr)
        t += gap
        if t + dur > n:
            break
        (f1, f2), op = _VOWELS[rng.integers(len(_VOWELS))]
        f0 = rng.uniform(100, 220) * np.linspace(1.0, rng.uniform(0.85, 1.15), dur)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        seg = np.zeros(dur)
        for h in range(1, 40):
            fh = h * f0.mean()
            if fh > sr / 2 - 200:
                break
            amp = np.exp(-((fh - f1) / 120.0) ** 2) + 0.7 * np.exp(-((fh - f2) / 180.0) ** 2) + 0.02
            seg += amp * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
        env = np.sin(np.linspace(0, np.pi, dur)) ** 0.7
        x[t : t + dur] += seg * env
        opening[t : t + dur] = op * env
        t += dur
    x = x + 1e-3 * rng.standard_normal(n)
    x = (0.5 * x / np.max(np.abs(x))).astype(np.float32)
    n_frames = int(math.ceil(duration_s * fps))
    yy, xx = np.mgrid[0:lip_size, 0:lip_size] / (lip_size - 1) - 0.5
    lips = np.zeros((n_frames, lip_size, lip_size), np.uint8)
    for i in range(n_frames):
        o = opening[min(n - 1, int(i / fps * sr))]
        inside = (xx / 0.35) ** 2 + (yy / (0.05 + 0.3 * o)) ** 2 <= 1.0
        lips[i] = np.where(inside, 30, 200).astype(np.uint8)
    return x, lips, fps


class ToyVAE(SpeechModel):
    """Frame-wise MLP VAE (audio-only, or AV with a gated fusion reporting its weights). Toy."""

    name = "toy-vae"
    frame_local_decoder = True  # frame-wise layers and gate

    def __init__(self, n_freq: int = 513, latent_dim: int = 16, hidden: int = 128, visual: bool = False, lip_size: int = 16, vdim: int = 32) -> None:
        super().__init__()
        self._n_freq, self._latent = n_freq, latent_dim
        self.is_audio_visual = visual
        self.enc = nn.Linear(n_freq, hidden)
        self.enc_mu = nn.Linear(hidden, latent_dim)
        self.enc_lv = nn.Linear(hidden, latent_dim)
        self.dec = nn.Linear(latent_dim, hidden)
        self.dec_out = nn.Linear(hidden, n_freq)
        if visual:
            self.vnet = nn.Sequential(nn.Linear(lip_size * lip_size, 64), nn.ReLU(), nn.Linear(64, vdim), nn.Tanh())
            self.enc_v = nn.Linear(vdim, hidden)
            self.dec_v = nn.Linear(vdim, hidden)
            self.gate_e = nn.Linear(2 * hidden, 1)
            self.gate_d = nn.Linear(2 * hidden, 1)

    @property
    def latent_dim(self) -> int:
        return self._latent

    @property
    def n_freq(self) -> int:
        return self._n_freq

    def visual_features(self, lips: Optional[torch.Tensor], mask: torch.Tensor) -> Optional[torch.Tensor]:
        if not self.is_audio_visual or lips is None:
            return None
        return self.vnet(lips.flatten(-2))

    def _fuse(self, a: torch.Tensor, vfeat: Optional[torch.Tensor], proj: nn.Linear,
              gate: nn.Linear) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The fused hidden layer and the fusion weights ``[B, T, 2]`` (mean over sample dims; None
        for the audio-only toy)."""
        if not self.is_audio_visual or vfeat is None:
            return torch.tanh(a), None
        v = proj(vfeat).expand_as(a)
        w = torch.sigmoid(gate(torch.cat([a, v], -1)))  # visual weight
        ww = torch.cat([1 - w, w], -1)
        while ww.dim() > 3:
            ww = ww.mean(0)
        return torch.tanh((1 - w) * a + w * v), ww

    def encode(self, power: torch.Tensor, vfeat: Optional[torch.Tensor], mask: torch.Tensor, *, return_weights: bool = False):
        h, w = self._fuse(self.enc(torch.log1p(power)), vfeat, getattr(self, "enc_v", None), getattr(self, "gate_e", None))
        mu, lv = self.enc_mu(h), self.enc_lv(h)
        return EncoderOutput(mu, lv, w) if return_weights else (mu, lv)

    def decode(self, z: torch.Tensor, vfeat: Optional[torch.Tensor], mask: torch.Tensor, *, return_weights: bool = False):
        h, w = self._fuse(self.dec(z), vfeat, getattr(self, "dec_v", None), getattr(self, "gate_d", None))
        d = self.dec_out(h)
        return DecoderOutput(d, w) if return_weights else d

    def config_dict(self) -> dict:
        return {"n_freq": self._n_freq, "latent_dim": self._latent, "visual": self.is_audio_visual}


def train_toy_vae(model: ToyVAE, powers: list[torch.Tensor], lips: Optional[list[torch.Tensor]] = None, *, steps: int = 300,
                  lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Quick ELBO training (IS reconstruction + KL) on clean power spectrograms ``[T, F]``. Toy."""
    torch.manual_seed(seed)
    P = torch.cat(powers)
    V = torch.cat(lips) if lips is not None else None
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, P.shape[0], (256,), generator=g)
        p = P[idx].unsqueeze(0)
        m = torch.ones(1, p.shape[1], dtype=torch.bool)
        vf = model.visual_features(V[idx].unsqueeze(0), m) if V is not None else None
        mu, lv = model.encode(p, vf, m)
        z = mu + torch.exp(0.5 * lv) * torch.randn(mu.shape, generator=g)
        lvs = model.decode(z, vf, m)
        rec = (lvs + p * torch.exp(-lvs)).sum(-1).mean()
        kl = 0.5 * (torch.exp(lv) + mu ** 2 - 1 - lv).sum(-1).mean()
        loss = rec + kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
