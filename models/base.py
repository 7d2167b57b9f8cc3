"""The speech-model contract the enhancement algorithms rely on.

Every registered speech model (audio-only or audio-visual) works on batched, padded tensors
with a frame mask, time first:

* ``power``  ``[B, T, F]`` linear power spectrogram ``|S|^2`` (or ``|X|^2`` of the mixture)
* ``lips``   ``[B, T, H, W]`` float lip frames in [0, 1] already at the STFT frame rate
  (see :func:`models.spectral.lips_to_stft_rate`), or ``None`` for audio-only models
* ``mask``   ``[B, T]`` bool, True on real frames, False on padding

Calls:

* ``visual_features(lips, mask) -> vfeat [B, T, Dv] | None``: computed **once per utterance**
  and passed to every later call (EM iterations reuse it).
* ``encode(power, vfeat, mask) -> (mu, logvar)`` each ``[B, T, L]``
* ``decode(z, vfeat, mask) -> logvar_s [B, T, F]`` the speech log-variance per TF bin;
  ``z`` may carry extra leading sample dims ``[..., B, T, L]``, broadcast against ``vfeat``.
* ``prior(vfeat, mask) -> (mu, logvar)`` ``[B, T, L]``: zeros for N(0, I), the visual prior
  p(z | v) for AV-CVAE-style models.
* ``last_weights() -> dict[str, Tensor [B, T, 2]]``: the fusion weights of the most recent
  encode/decode calls, keyed "encoder"/"decoder" (column 0 = audio, 1 = visual); empty if the
  model has none (audio-only; every fusion reports weights, ``docs/fusion_weights.md``).
* ``save/config``: see :mod:`models.checkpoint`.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn


class SpeechModel(nn.Module):
    """Base class of every speech model (see the module docstring for the contract)."""

    #: registry name, set by subclasses
    name: str = "base"
    #: whether the model uses the lips
    is_audio_visual: bool = False

    def __init__(self) -> None:
        super().__init__()
        self._last_weights: dict[str, torch.Tensor] = {}

    # -- contract ------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def n_freq(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def visual_features(self, lips: Optional[torch.Tensor], mask: torch.Tensor) -> Optional[torch.Tensor]:
        return None

    def encode(self, power: torch.Tensor, vfeat: Optional[torch.Tensor], mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def decode(self, z: torch.Tensor, vfeat: Optional[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def prior(self, vfeat: Optional[torch.Tensor], mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standard normal prior by default."""
        B, T = mask.shape
        z = torch.zeros(B, T, self.latent_dim, device=mask.device)
        return z, z

    def last_weights(self) -> dict[str, torch.Tensor]:
        return dict(self._last_weights)

    def config_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError
