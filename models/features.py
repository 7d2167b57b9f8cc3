"""Utterance -> model tensors, and batching with padding and masks.

* audio: peak-normalised (``x / max|x|``, as in the published training code) then the linear power
  spectrogram ``|S|^2`` ``[T, F]`` (:func:`models.spectral.power_spectrogram`);
* lips: uint8 ``N x H x W`` at the video rate -> float in [0, 1], resized to the model's
  ``lip_size`` (area interpolation, :func:`resize_lips_float`) and mapped to the STFT frame rate with
  :func:`models.spectral.lips_to_stft_rate` (the one place that mapping lives).

Training works on sequences: :func:`chunk_bounds` cuts an utterance into ``seq_len``-frame chunks
(the last one shorter) and :func:`pad_batch` pads a list of chunks into ``[B, T, ...]`` with a
``[B, T]`` bool mask (True on real frames).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.audio_io import DataError
from models.spectral import STFTConfig, power_spectrogram

log = logging.getLogger(__name__)


def normalise_waveform(x: np.ndarray) -> np.ndarray:
    """``x / max|x|`` (the published training scaling); a silent signal is a :class:`ValueError`."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not np.isfinite(peak) or peak <= 0:
        raise ValueError("cannot normalise a silent or non-finite waveform")
    return (x / peak).astype(np.float32)


def utterance_power(audio: np.ndarray, stft_cfg: STFTConfig = STFTConfig(), *, normalise: bool = True) -> torch.Tensor:
    """Linear power spectrogram ``[T, F]`` (float32) of a mono waveform."""
    x = normalise_waveform(audio) if normalise else np.asarray(audio, dtype=np.float32)
    return power_spectrogram(torch.from_numpy(x), stft_cfg).float()


def resize_lips_float(lips: torch.Tensor, lip_size: int) -> torch.Tensor:
    """Float lips ``[..., H, W]`` -> ``[..., lip_size, lip_size]`` by area interpolation (torch
    ``interpolate(mode="area")``); a no-op when the size already matches. The one resize used by
    training (:func:`resize_lips`) and by the models at inference (``AVVAE.visual_features``)."""
    H, W = lips.shape[-2:]
    if (H, W) == (lip_size, lip_size):
        return lips
    lead = lips.shape[:-2]
    flat = lips.reshape(-1, 1, H, W)
    out = torch.nn.functional.interpolate(flat, size=(lip_size, lip_size), mode="area")
    return out.reshape(*lead, lip_size, lip_size)


def resize_lips(frames: np.ndarray, lip_size: int) -> np.ndarray:
    """uint8 ``N x H x W`` -> uint8 ``N x lip_size x lip_size`` with :func:`resize_lips_float`
    (rounded); no-op if the size already matches."""
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise ValueError(f"lip frames must be N x H x W, got shape {frames.shape}")
    if frames.shape[1:] == (lip_size, lip_size):
        return frames
    out = resize_lips_float(torch.from_numpy(frames.astype(np.float32)), lip_size)
    return out.round().clamp(0, 255).to(torch.uint8).numpy()


@dataclass
class ClipItem:
    """One clean utterance ready for training: power ``[T, F]`` and its uint8 lips at video rate
    (kept at video rate so augmentation can corrupt them before the frame-rate mapping)."""

    utt_id: str
    speaker: str
    power: torch.Tensor
    lips_video: np.ndarray
    fps: float

    @property
    def n_frames(self) -> int:
        return int(self.power.shape[0])


def load_split(corpus_root: str | Path, split: str, *, lip_size: int = 64, stft_cfg: STFTConfig = STFTConfig(),
               limit: Optional[int] = None, progress: bool = True) -> list[ClipItem]:
    """Load every utterance of ``split`` as :class:`ClipItem` (lips already resized to ``lip_size``).
    Errors name the manifest file and the missing split."""
    from benchmark.corpus.manifest import MANIFEST_FILE, load_utterance, read_manifest, select

    root = Path(corpus_root)
    df = select(read_manifest(root), split, limit)
    if df.empty:
        raise DataError(root / MANIFEST_FILE, f"corpus has no utterances in split {split!r}")
    items = []
    for _, row in tqdm(df.iterrows(), total=len(df), desc=f"load {split}", disable=not progress, leave=False):
        utt = load_utterance(root, row)
        try:
            power = utterance_power(utt.audio, stft_cfg)
        except ValueError as exc:
            raise DataError(root / str(row["audio_path"]), str(exc)) from exc
        items.append(ClipItem(utt.utt_id, utt.speaker, power, resize_lips(utt.lips, lip_size), utt.fps))
    return items


def chunk_bounds(n_frames: int, seq_len: int) -> list[tuple[int, int]]:
    """Non-overlapping ``[start, end)`` chunks of ``seq_len`` frames covering ``n_frames``."""
    return [(s, min(s + seq_len, n_frames)) for s in range(0, n_frames, seq_len)]


def pad_batch(powers: Sequence[torch.Tensor], lips: Optional[Sequence[torch.Tensor]] = None
              ) -> tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
    """Pad ``[T_i, F]`` powers (and ``[T_i, H, W]`` lips) to ``[B, T_max, ...]``; mask ``[B, T_max]``.
    Padded power bins are 1.0 (harmless in logs), padded lips 0."""
    B = len(powers)
    if B == 0:
        raise ValueError("pad_batch needs at least one item")
    T = max(int(p.shape[0]) for p in powers)
    F = int(powers[0].shape[1])
    P = torch.ones(B, T, F, dtype=powers[0].dtype)
    M = torch.zeros(B, T, dtype=torch.bool)
    L = None
    if lips is not None:
        H, W = lips[0].shape[-2:]
        L = torch.zeros(B, T, H, W, dtype=lips[0].dtype)
    for i, p in enumerate(powers):
        n = int(p.shape[0])
        P[i, :n] = p
        M[i, :n] = True
        if L is not None:
            if int(lips[i].shape[0]) != n:
                raise ValueError(f"batch item {i}: {lips[i].shape[0]} lip frames for {n} STFT frames")
            L[i, :n] = lips[i]
    return P, L, M
