"""Visual front-ends: lip frames ``[B, T, H, W]`` (float in [0, 1], at the STFT frame rate) ->
visual embeddings ``[B, T, D]``; registered in :data:`models.registry.FRONTENDS`.

* ``linear``: the published "base" visual network of the AV-CVAE: flattened raw pixels ->
  Linear 512 -> ReLU -> Linear D -> ReLU (avse-vae ``vfeats``: 4489 -> 512 -> 128).
* ``linear-std``: the ``linear`` network with two deliberate deviations from the published one,
  for the reliability weights (``docs/fusion_weights.md`` "Learning reliability"): each frame's
  pixels are standardised (centred, unit variance over the frame) before the first layer, and
  the output layer is linear (no final ReLU), so no output unit can die (the hidden layer keeps
  its ReLU). Measured on the smoke corpus (gated fusion,
  15 epochs from the A-VAE; ``docs/fusion_weights.md`` "Learning reliability"): no constant
  output unit after training (``linear``: 87-91 %), occluded vs clean frames linearly separable
  from the embedding (AUC 0.99-1.00; ``linear``: 0.53-0.78); with audio masking and the rank
  supervision the visual weight then tracks pixel noise and black frames, but hardly occlusion.
  Not the default: the published network stays ``linear``.
* ``cnn2d``: a small per-frame 2-D CNN (3 strided conv layers, global average pooling, linear).
* ``cnn3d``: a small spatio-temporal 3-D CNN (temporal kernel 3 in the first two layers, strided
  spatially), in the spirit of the 3-D conv front-end of lip-reading networks (much smaller).

Padding frames are zeroed at the input and after every temporal layer, so they never change
the features of real frames; the output is zero on padding frames.

The per-frame front-ends (``linear``, ``linear-std``, ``cnn2d``) run their network once per
*distinct* frame (:func:`per_distinct_frame`): the lips reach the model at the STFT frame rate by
index repetition of the video frames (``models.spectral.lips_to_stft_rate``: 25 fps video at
62.5 STFT frames/s repeats each frame 2-3 times), so the network is evaluated on ~40 % of the
frames and its output gathered back. The result is the same function (each frame's output
depends on that frame only; the gradient of a repeated frame is summed over its copies as
before); only the floating-point rounding of the batched matrix products may differ in the last
bits. Measured on 1 CPU thread (AV-VAE/concat training step, batch 32 x 50 frames): the front-end
was 73 % of the step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from models.fusion.base import count_macs, masked
from models.registry import FRONTENDS


@dataclass
class FrontendConfig:
    """Front-end settings (``lip_size`` is the side of the square lip crop)."""

    lip_size: int = 64
    out_dim: int = 128
    hidden: int = 512  # linear front-end hidden width (published: 512)
    channels: int = 16  # CNN base width


def per_distinct_frame(net: nn.Module | Callable[[torch.Tensor], torch.Tensor], frames: torch.Tensor) -> torch.Tensor:
    """``net`` applied to each frame of ``frames [B, T, ...]``, evaluated once per run of
    consecutive identical frames of a sequence: returns ``[B, T, ...out]`` equal to
    ``net(frames.flatten(0, 1)).unflatten(0, (B, T))`` (up to float rounding). ``net`` maps
    ``[N, ...] -> [N, ...out]`` and must treat frames independently (no batch statistics)."""
    B, T = frames.shape[:2]
    flat = frames.reshape(B * T, *frames.shape[2:])
    new = torch.ones(B, T, dtype=torch.bool, device=frames.device)
    if T > 1:
        new[:, 1:] = (frames[:, 1:] != frames[:, :-1]).reshape(B, T - 1, -1).any(dim=-1)
    new = new.reshape(-1)
    index = torch.cumsum(new.to(torch.long), 0) - 1  # [B*T]: row of each frame's distinct frame
    out = net(flat[new])
    return out[index].reshape(B, T, *out.shape[1:])


class Frontend(nn.Module):
    """Base class: ``forward(lips [B,T,H,W], mask [B,T]) -> [B,T,out_dim]`` and a cost report."""

    name = "base"

    def __init__(self, config: FrontendConfig) -> None:
        super().__init__()
        self.config = config

    def _check(self, lips: torch.Tensor) -> None:
        s = self.config.lip_size
        if lips.dim() != 4 or lips.shape[-2:] != (s, s):
            raise ValueError(f"{self.name} front-end expects lips [B, T, {s}, {s}], got {tuple(lips.shape)}")

    def cost_per_frame(self, n_frames: int = 8) -> dict[str, int]:
        """Parameter count and multiply-adds per frame (conv/linear layers, by forward hooks)."""
        s = self.config.lip_size
        macs = count_macs(self, lambda: self(torch.zeros(1, n_frames, s, s), torch.ones(1, n_frames, dtype=torch.bool)))
        return {"params": sum(p.numel() for p in self.parameters()), "macs": int(round(macs / n_frames))}


@FRONTENDS.register("linear")
class LinearFrontend(Frontend):
    """Raw lip pixels -> Linear 512 -> ReLU -> Linear D -> ReLU (published AV-CVAE base network)."""

    name = "linear"

    def __init__(self, config: FrontendConfig) -> None:
        super().__init__(config)
        c = config
        self.net = nn.Sequential(nn.Linear(c.lip_size * c.lip_size, c.hidden), nn.ReLU(),
                                 nn.Linear(c.hidden, c.out_dim), nn.ReLU())

    def forward(self, lips: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self._check(lips)
        return masked(per_distinct_frame(self.net, lips.flatten(-2)), mask)


def standardise_frames(x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Per-frame standardisation of flattened frames ``[..., P]``: centred, divided by
    ``sqrt(var + eps)`` over the ``P`` pixels. A constant frame (black, padding) maps to zeros."""
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


@FRONTENDS.register("linear-std")
class StandardisedLinearFrontend(Frontend):
    """Per-frame standardised pixels -> Linear 512 -> ReLU -> Linear D (no final ReLU).

    Deviates from the published base network (``linear``) in the input scaling and the output
    activation only; same parameter count and cost.
    """

    name = "linear-std"

    def __init__(self, config: FrontendConfig) -> None:
        super().__init__(config)
        c = config
        self.net = nn.Sequential(nn.Linear(c.lip_size * c.lip_size, c.hidden), nn.ReLU(),
                                 nn.Linear(c.hidden, c.out_dim))

    def forward(self, lips: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self._check(lips)
        return masked(per_distinct_frame(lambda x: self.net(standardise_frames(x)), lips.flatten(-2)), mask)


def _conv_out(size: int, n: int) -> int:
    for _ in range(n):
        size = (size + 2 * 2 - 5) // 2 + 1
    return size


@FRONTENDS.register("cnn2d")
class CNN2DFrontend(Frontend):
    """Per-frame 2-D CNN: 3 conv layers (5x5, stride 2, ReLU), global average pool, linear + ReLU."""

    name = "cnn2d"

    def __init__(self, config: FrontendConfig) -> None:
        super().__init__(config)
        ch = config.channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, ch, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(ch, 2 * ch, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(2 * ch, 4 * ch, 5, stride=2, padding=2), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(4 * ch, config.out_dim), nn.ReLU())

    def forward(self, lips: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self._check(lips)
        return masked(per_distinct_frame(lambda x: self.head(self.conv(x.unsqueeze(1)).mean(dim=(-1, -2))), lips), mask)


@FRONTENDS.register("cnn3d")
class CNN3DFrontend(Frontend):
    """Spatio-temporal 3-D CNN (kernels 3x5x5, spatial stride 2), global spatial pool, linear + ReLU."""

    name = "cnn3d"

    def __init__(self, config: FrontendConfig) -> None:
        super().__init__(config)
        ch = config.channels
        self.layers = nn.ModuleList([
            nn.Conv3d(1, ch, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2)),
            nn.Conv3d(ch, 2 * ch, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2)),
            nn.Conv3d(2 * ch, 4 * ch, (1, 5, 5), stride=(1, 2, 2), padding=(0, 2, 2)),
        ])
        self.head = nn.Sequential(nn.Linear(4 * ch, config.out_dim), nn.ReLU())

    def forward(self, lips: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self._check(lips)
        m = mask.to(lips.dtype)[:, None, :, None, None]  # [B, 1, T, 1, 1]
        y = lips.unsqueeze(1) * m
        for conv in self.layers:
            y = torch.relu(conv(y)) * m  # re-zero padding so it cannot leak into real frames
        y = y.mean(dim=(-1, -2)).transpose(1, 2)  # [B, T, C]
        return masked(self.head(y), mask)

