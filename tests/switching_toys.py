"""Small synthetic speech models and problems for the switching/mixture EM tests.

Known by construction: the speech log-spectrum of each frame is one of ``C`` templates, chosen
by a hidden class; the toy "AV" decoder reads the class from a one-hot "video" (so it is exact
when the video is informative and wrong when the video is noise); the toy audio-only decoder
is an affine rank-``L`` model of the templates (it can only approximate them).
"""
from __future__ import annotations

from typing import Optional

import torch

from models.base import DecoderOutput, EncoderOutput, SpeechModel


class ToyAudioVAE(SpeechModel):
    """Audio-only toy: ``logvar = mean + z @ U`` (rank-L affine span of the templates)."""

    name = "toy-a"
    is_audio_visual = False

    def __init__(self, templates: torch.Tensor, L: int = 2) -> None:
        super().__init__()
        mean = templates.mean(0)
        _, _, Vh = torch.linalg.svd(templates - mean, full_matrices=False)
        S = torch.linalg.svdvals(templates - mean)
        self.register_buffer("mean", mean)
        self.register_buffer("U", Vh[:L] * (S[:L, None] / templates.shape[0] ** 0.5))
        self._L = L

    @property
    def latent_dim(self) -> int:
        return self._L

    @property
    def n_freq(self) -> int:
        return self.mean.shape[0]

    def encode(self, power, vfeat, mask, *, return_weights=False):
        B, T, _ = power.shape
        z = torch.zeros(B, T, self._L, dtype=power.dtype, device=power.device)
        return EncoderOutput(z, z, None) if return_weights else (z, z)

    def decode(self, z, vfeat, mask, *, return_weights=False):
        d = self.mean + z @ self.U
        return DecoderOutput(d, None) if return_weights else d

    def config_dict(self):
        return {"name": self.name}


class ToyAVVAE(SpeechModel):
    """AV toy: ``logvar = onehot(video) @ templates + 0.1 * z @ U`` with a dummy fusion weight (0.5) returned on request."""

    name = "toy-av"
    is_audio_visual = True

    def __init__(self, templates: torch.Tensor, L: int = 2) -> None:
        super().__init__()
        self.register_buffer("D", templates.clone())
        g = torch.Generator().manual_seed(1)
        self.register_buffer("U", 0.1 * torch.randn(L, templates.shape[1], generator=g, dtype=templates.dtype))
        self._L = L

    @property
    def latent_dim(self) -> int:
        return self._L

    @property
    def n_freq(self) -> int:
        return self.D.shape[1]

    def visual_features(self, lips: Optional[torch.Tensor], mask: torch.Tensor):
        return lips.flatten(2)  # [B, T, C]

    def encode(self, power, vfeat, mask, *, return_weights=False):
        B, T, _ = power.shape
        z = torch.zeros(B, T, self._L, dtype=power.dtype, device=power.device)
        return EncoderOutput(z, z, None) if return_weights else (z, z)

    def decode(self, z, vfeat, mask, *, return_weights=False):
        d = vfeat @ self.D + z @ self.U
        w = torch.full((*mask.shape, 2), 0.5, dtype=z.dtype)  # a dummy fusion weight
        return DecoderOutput(d, w) if return_weights else d

    def config_dict(self):
        return {"name": self.name}


def make_templates(F: int = 24, C: int = 4, seed: int = 0, scale: float = 2.0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(C, F, generator=g, dtype=dtype)


def make_problem(templates: torch.Tensor, T: int, seed: int, corrupt: torch.Tensor | None = None, snr_db: float = 0.0):
    """One utterance: (noisy power [T, F], clean complex STFT, noise, lips [T, 1, C], classes [T]).

    Classes change in runs of 4 to 10 frames; ``corrupt [T] bool`` replaces those video frames by
    uniform noise in [0, 1] (so the toy AV decoder outputs a random blend of the templates: no
    information about the class). The noise is stationary coloured Gaussian at ``snr_db``.
    """
    g = torch.Generator().manual_seed(seed)
    C, F = templates.shape
    dt = templates.dtype
    cls = torch.empty(T, dtype=torch.long)
    t = 0
    while t < T:
        n = int(torch.randint(4, 11, (1,), generator=g))
        cls[t:t + n] = int(torch.randint(0, C, (1,), generator=g))
        t += n
    var_s = torch.exp(templates[cls])
    s = torch.sqrt(var_s / 2) * torch.complex(torch.randn(T, F, generator=g, dtype=dt), torch.randn(T, F, generator=g, dtype=dt))
    shape = torch.exp(torch.linspace(0.5, -0.5, F, dtype=dt))
    nvar = shape * var_s.mean() / shape.mean() * 10 ** (-snr_db / 10)
    b = torch.sqrt(nvar / 2) * torch.complex(torch.randn(T, F, generator=g, dtype=dt), torch.randn(T, F, generator=g, dtype=dt))
    vid = torch.nn.functional.one_hot(cls, C).to(dt)
    if corrupt is not None:
        vid[corrupt] = torch.rand(T, C, generator=g, dtype=dt)[corrupt]
    x = s + b
    return x.abs() ** 2, s, b, vid[:, None, :], cls


def rescaled_component(comp, scale: float, name: str):
    """The same speech model as ``comp`` with its latent rescaled by ``scale``: prior
    ``N(scale mu, scale^2 sigma^2)``, decoder ``decode(z / scale)``, start ``scale z_init``.

    Both have exactly the same frame evidence ``p(x_t)`` (a change of variables), but the
    posterior of the rescaled one is ``scale`` times as wide in every latent dimension, so its
    log joint differs by ``-L log scale`` per frame: the toy that exposes a switch score
    without the posterior entropy."""
    from models.enhancement.switching import Component

    return Component(
        name=name,
        decode=lambda z, _d=comp.decode, _s=scale: _d(z / _s),
        prior_mu=comp.prior_mu * scale,
        prior_logvar=comp.prior_logvar + 2.0 * torch.log(torch.as_tensor(scale, dtype=comp.prior_logvar.dtype)),
        z_init=comp.z_init * scale,
    )
