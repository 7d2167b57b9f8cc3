"""STFT / inverse STFT and the video-to-STFT frame mapping: the only place these live.

Defaults follow the published unsupervised AVSE work at 62.5 frames/s (av-dkf, ps-rvae-se):
16 kHz, 1024-sample sine window, hop 256, 513 bins, ``center=True`` with zero padding.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class STFTConfig:
    """STFT settings (all configurable; defaults as published)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 256
    window: str = field(default="sine", metadata={"choices": ("sine", "hann")})

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def n_frames(self, n_samples: int) -> int:
        """Number of STFT frames for a signal of ``n_samples`` (center=True)."""
        return 1 + n_samples // self.hop


@lru_cache(maxsize=16)
def _window(kind: str, n: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    if kind == "sine":
        w = torch.sin(torch.pi * (torch.arange(n, dtype=torch.float64) + 0.5) / n)
    elif kind == "hann":
        w = torch.hann_window(n, periodic=True, dtype=torch.float64)
    else:
        raise ValueError(f"unknown window {kind!r} (sine, hann)")
    return w.to(device=device, dtype=dtype)


def stft(x: torch.Tensor | np.ndarray, cfg: STFTConfig = STFTConfig()) -> torch.Tensor:
    """Complex STFT ``[..., T, F]`` (time first) of ``x [..., n_samples]``."""
    xt = torch.as_tensor(x)
    if not torch.is_floating_point(xt):
        xt = xt.float()
    shape = xt.shape[:-1]
    flat = xt.reshape(-1, xt.shape[-1])
    w = _window(cfg.window, cfg.n_fft, str(flat.device), flat.dtype)
    X = torch.stft(flat, cfg.n_fft, hop_length=cfg.hop, window=w, center=True, pad_mode="constant", return_complex=True)
    X = X.transpose(-1, -2)  # [B, T, F]
    return X.reshape(*shape, X.shape[-2], X.shape[-1])


def istft(X: torch.Tensor, length: int, cfg: STFTConfig = STFTConfig()) -> torch.Tensor:
    """Inverse of :func:`stft`: ``X [..., T, F]`` -> ``[..., length]``."""
    shape = X.shape[:-2]
    flat = X.reshape(-1, X.shape[-2], X.shape[-1]).transpose(-1, -2)
    real_dtype = torch.float64 if flat.dtype == torch.complex128 else torch.float32
    w = _window(cfg.window, cfg.n_fft, str(flat.device), real_dtype)
    y = torch.istft(flat, cfg.n_fft, hop_length=cfg.hop, window=w, center=True, length=length)
    return y.reshape(*shape, length)


def power_spectrogram(x: torch.Tensor | np.ndarray, cfg: STFTConfig = STFTConfig()) -> torch.Tensor:
    """``|STFT|^2`` as ``[..., T, F]`` (linear power, as the published models see it)."""
    return stft(x, cfg).abs().pow(2)


def video_frame_index(n_stft_frames: int, fps: float, cfg: STFTConfig = STFTConfig(), n_video_frames: int | None = None) -> np.ndarray:
    """For each STFT frame, the index of the video frame shown at that time (nearest-previous
    index repetition, i.e. floor(t * fps)), clipped to the available frames."""
    t = np.arange(n_stft_frames) * cfg.hop / cfg.sample_rate
    idx = np.floor(t * fps + 1e-9).astype(np.int64)
    if n_video_frames is not None:
        idx = np.clip(idx, 0, n_video_frames - 1)
    return idx


def lips_to_stft_rate(frames: np.ndarray | torch.Tensor, n_stft_frames: int, fps: float, cfg: STFTConfig = STFTConfig()):
    """Upsample lip frames ``[N, ...]`` to the STFT frame rate ``[n_stft_frames, ...]`` by index repetition."""
    idx = video_frame_index(n_stft_frames, fps, cfg, n_video_frames=len(frames))
    if isinstance(frames, torch.Tensor):
        return frames[torch.as_tensor(idx, device=frames.device)]
    return frames[idx]


def per_frame_to_stft_rate(values: np.ndarray, n_stft_frames: int, fps: float, cfg: STFTConfig = STFTConfig()) -> np.ndarray:
    """Map any per-video-frame array (e.g. a corruption mask) to the STFT frame rate."""
    return lips_to_stft_rate(np.asarray(values), n_stft_frames, fps, cfg)
