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
* with ``return_weights=True`` both also return the fusion weights of that very call:
  ``encode -> EncoderOutput(mu, logvar, weights)``, ``decode -> DecoderOutput(logvar, weights)``,
  ``weights [B, T, 2]`` (column 0 = audio, 1 = visual; sample dims of ``z`` averaged) with their
  graph, or None for a model without fusion weights (audio-only; every fusion reports weights,
  ``docs/fusion_weights.md``). Models keep no record of their last call.
* ``prior(vfeat, mask) -> (mu, logvar)`` ``[B, T, L]``: zeros for N(0, I), the visual prior
  p(z | v) for AV-CVAE-style models.
* ``save/config``: see :mod:`models.checkpoint`.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch
from torch import nn


class EncoderOutput(NamedTuple):
    """``encode(..., return_weights=True)``: the posterior ``mu, logvar [B, T, L]`` and the encoder
    fusion's weights ``[B, T, 2]`` (None without a fusion)."""

    mu: torch.Tensor
    logvar: torch.Tensor
    weights: Optional[torch.Tensor]


class DecoderOutput(NamedTuple):
    """``decode(..., return_weights=True)``: the speech log-variance ``[..., B, T, F]`` and the
    decoder fusion's weights ``[B, T, 2]`` (None without a fusion)."""

    logvar: torch.Tensor
    weights: Optional[torch.Tensor]


class SpeechModel(nn.Module):
    """Base class of every speech model (see the module docstring for the contract)."""

    #: registry name, set by subclasses
    name: str = "base"
    #: whether the model uses the lips
    is_audio_visual: bool = False
    #: True when the decoder output of a frame depends on that frame's latent only (no temporal
    #: context over ``z``): MCEM then carries each frame's decoded variance along the accepted MH
    #: moves instead of decoding the kept states again (:mod:`models.enhancement.mcem`). False is
    #: always safe; ``tests/test_frame_local_decoder.py`` checks that no registered model claims it
    #: wrongly.
    frame_local_decoder: bool = False

    def __init__(self) -> None:
        super().__init__()

    # -- contract ------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def n_freq(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def visual_features(self, lips: Optional[torch.Tensor], mask: torch.Tensor) -> Optional[torch.Tensor]:
        return None

    def encode(self, power: torch.Tensor, vfeat: Optional[torch.Tensor], mask: torch.Tensor, *,
               return_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor] | EncoderOutput:  # pragma: no cover
        raise NotImplementedError

    def decode(self, z: torch.Tensor, vfeat: Optional[torch.Tensor], mask: torch.Tensor, *,
               return_weights: bool = False) -> torch.Tensor | DecoderOutput:  # pragma: no cover
        raise NotImplementedError

    def prior(self, vfeat: Optional[torch.Tensor], mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standard normal prior by default."""
        B, T = mask.shape
        z = torch.zeros(B, T, self.latent_dim, device=mask.device)
        return z, z

    def config_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError
