"""Visual-reliability augmentation for training on clean speech.

With probability ``p_corrupt`` an utterance's lip frames get one random visual corruption (kind
drawn from ``kinds``, severity ~ U[min_severity, max_severity]) through
:func:`benchmark.conditions.corruptions.apply_corruption` (the same corruptions as the test
conditions); with probability ``p_drop`` the whole video is dropped (all frames zero). The random
draws come from ``derive_seed(seed, utt_id, epoch)``, never from process order. Each call also
returns the per-frame corruption ``level`` (0 = clean, 1 = gone), the target of the optional
reliability loss of :mod:`models.training`.

Audio-side degradation (:class:`AudioMaskConfig`, :func:`degrade_audio`, off by default): frame
and frequency-band masking (SpecAugment-like) and optional additive white noise of the *encoder's*
input only, so that on some frames only the lips can tell what was said; the reconstruction
target stays the clean spectrogram (training still sees clean speech as its target).

If the corruption module is not importable (or lacks the requested kinds) a small built-in set
is used instead and a warning says so: occlusion (grey patch over bursts of frames), Gaussian
blur, additive Gaussian pixel noise, and frozen frames.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from benchmark.seeding import derive_seed

log = logging.getLogger(__name__)

#: preferred kinds of the shared corruption registry, in order (names that are absent are skipped)
PREFERRED_KINDS = ("occlusion", "occlusion-center", "blur", "motion-blur", "noise", "salt-pepper", "lowres", "jpeg",
                   "frame-drop", "freeze", "low-fps", "lighting", "offset")


@dataclass
class AugmentConfig:
    """Visual-reliability augmentation settings."""

    enabled: bool = True
    p_corrupt: float = 0.5
    p_drop: float = 0.1
    min_severity: float = 0.2
    max_severity: float = 1.0
    kinds: Optional[list[str]] = None  # None: every preferred kind the corruption registry has
    seed: int = 0


# -- built-in fallback set (used only when benchmark.conditions.corruptions is missing) --------------
def _bursts(n: int, frac: float, rng: np.random.Generator) -> np.ndarray:
    sel = np.zeros(n, dtype=bool)
    length = max(1, int(round(frac * n)))
    start = int(rng.integers(0, max(1, n - length + 1)))
    sel[start:start + length] = True
    return sel


def _builtin_occlusion(frames, severity, rng):
    n, h, w = frames.shape
    out = frames.copy()
    sel = _bursts(n, 0.3 + 0.5 * severity, rng)
    side = max(2, int(round((0.25 + 0.5 * severity) * min(h, w))))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    out[sel, y:y + side, x:x + side] = np.uint8(rng.integers(60, 200))
    return out, sel.astype(np.float32) * severity


def _builtin_blur(frames, severity, rng):
    import cv2

    sigma = 0.5 + 2.5 * severity * frames.shape[1] / 64
    out = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])
    return out, np.full(len(frames), severity, np.float32)


def _builtin_noise(frames, severity, rng):
    std = np.sqrt(0.2 * severity) * 255.0
    out = np.clip(frames.astype(np.float32) + rng.normal(0, std, frames.shape), 0, 255).astype(np.uint8)
    return out, np.full(len(frames), severity, np.float32)


def _builtin_freeze(frames, severity, rng):
    n = len(frames)
    sel = _bursts(n, 0.2 + 0.6 * severity, rng)
    out = frames.copy()
    idx = np.arange(n)
    first = int(np.argmax(sel))
    idx[sel] = max(0, first - 1)
    out = frames[idx]
    return out, sel.astype(np.float32) * severity


BUILTIN = {"occlusion": _builtin_occlusion, "blur": _builtin_blur, "noise": _builtin_noise, "freeze": _builtin_freeze}


def resolve_kinds(requested: Optional[list[str]] = None) -> tuple[list[str], bool]:
    """The corruption kinds to draw from and whether the shared registry is used (else built-ins)."""
    try:
        from benchmark.conditions.corruptions import CORRUPTIONS

        known = CORRUPTIONS.names()
    except Exception as exc:  # noqa: BLE001 - optional dependency on another stage
        log.warning("visual corruption registry unavailable (%s: %s); using the built-in augmentation set",
                    type(exc).__name__, exc)
        kinds = [k for k in (requested or list(BUILTIN)) if k in BUILTIN]
        return kinds or list(BUILTIN), False
    if requested:
        missing = [k for k in requested if k not in known]
        if missing:
            raise KeyError(f"unknown augmentation corruption(s) {missing}; known: {', '.join(known)}")
        return list(requested), True
    kinds = [k for k in PREFERRED_KINDS if k in known]
    return (kinds or [k for k in known if k not in ("none", "missing")]), True


class VisualAugmenter:
    """Callable ``(frames uint8 [N,H,W], utt_id, epoch) -> (frames, level [N])`` (see module doc)."""

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config
        self.kinds, self.shared = resolve_kinds(config.kinds)
        log.info("visual augmentation: p_corrupt %.2f over %s (%s), whole-video dropout p %.2f",
                 config.p_corrupt, self.kinds, "shared corruptions" if self.shared else "built-in set", config.p_drop)

    def __call__(self, frames: np.ndarray, utt_id: str, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        n = len(frames)
        if not c.enabled:
            return frames, np.zeros(n, np.float32)
        rng = np.random.default_rng(derive_seed(c.seed, "augment", utt_id, epoch))
        u = rng.random()
        if u < c.p_drop:
            return np.zeros_like(frames), np.ones(n, np.float32)
        if u >= c.p_drop + c.p_corrupt:
            return frames, np.zeros(n, np.float32)
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        sev = float(rng.uniform(c.min_severity, c.max_severity))
        sub_seed = int(rng.integers(0, 2**62))
        if self.shared:
            from benchmark.conditions.corruptions import apply_corruption

            out, level = apply_corruption(frames, f"{kind}@{sev:.3f}", sub_seed)
        else:
            out, level = BUILTIN[kind](frames, sev, np.random.default_rng(sub_seed))
        return np.asarray(out, dtype=np.uint8), np.asarray(level, dtype=np.float32)


# -- audio-side degradation of the encoder input ------------------------------------------------------
@dataclass
class AudioMaskConfig:
    """Audio-side degradation of the *encoder's* input during training (SpecAugment-like; off by default).

    Per sequence of a batch: with probability ``p_frames`` up to ``n_frame_masks`` runs of
    1..``max_frames`` STFT frames are masked (the whole spectrum replaced by ``fill``); with
    probability ``p_bands`` up to ``n_band_masks`` bands of 1..``max_bins`` frequency bins are
    masked on every frame; with probability ``p_noise`` complex white Gaussian noise is added at an
    SNR ~ U[``snr_db``] (sequence power over real frames). The reconstruction target is untouched."""

    p_frames: float = 0.0
    n_frame_masks: int = 2
    max_frames: int = 10
    p_bands: float = 0.0
    n_band_masks: int = 2
    max_bins: int = 64
    p_noise: float = 0.0
    snr_db: tuple[float, float] = (-5.0, 10.0)

    @property
    def active(self) -> bool:
        """Whether any degradation can happen."""
        return (self.p_frames > 0 and self.n_frame_masks > 0 and self.max_frames > 0) or \
            (self.p_bands > 0 and self.n_band_masks > 0 and self.max_bins > 0) or self.p_noise > 0


@dataclass
class AudioDegradation:
    """What :func:`degrade_audio` returns.

    ``power`` ``[B, T, F]`` the degraded encoder input; ``frame_mask`` ``[B, T]`` bool, frames
    whose whole spectrum was masked; ``level`` ``[B, T]`` float in [0, 1], the per-frame
    audio-degradation mask (1 on masked frames, else the fraction of masked bins; 0 on padding);
    ``snr_db`` ``[B]`` the SNR of the added noise (``inf`` where none was added)."""

    power: torch.Tensor
    frame_mask: torch.Tensor
    level: torch.Tensor
    snr_db: torch.Tensor


def _runs(n: int, count: int, max_width: int, gen: torch.Generator) -> torch.Tensor:
    """Bool ``[n]``: the union of ``count`` runs of width U{1..max_width} at uniform starts."""
    sel = torch.zeros(n, dtype=torch.bool)
    if n <= 0:
        return sel
    for _ in range(count):
        w = min(n, int(torch.randint(1, max_width + 1, (1,), generator=gen)))
        s = int(torch.randint(0, n - w + 1, (1,), generator=gen))
        sel[s:s + w] = True
    return sel


def degrade_audio(power: torch.Tensor, mask: torch.Tensor, config: AudioMaskConfig, generator: torch.Generator,
                  fill: Optional[torch.Tensor] = None) -> AudioDegradation:
    """Degrade a batch of power spectrograms ``power [B, T, F]`` (``mask [B, T]`` True on real
    frames) as :class:`AudioMaskConfig` says; a pure function of its inputs and ``generator``
    (a CPU ``torch.Generator``: the same seed gives the same result; the input is not modified).

    Masked bins take ``fill [F]`` (default: the per-frequency geometric mean of the real frames
    of the batch, i.e. the mean log-power, which is 0 after the encoder's standardisation, as
    SpecAugment's mean masking). Noise: ``|sqrt(P) + N|^2`` with ``N ~ N_c(0, sigma^2)`` per bin,
    ``sigma^2 = mean(P) / 10^(snr / 10)`` (the power of a white-noise STFT added to the speech
    STFT, exact in distribution for any speech phase; overlap correlations across frames are
    ignored). Noise is added before masking, so masked bins carry no speech and no noise."""
    B, T, F = power.shape
    m = mask.to(torch.bool)
    out = power.detach().clone()
    if fill is None:
        real = m.cpu()
        lp = torch.log(power.detach().cpu()[real].double() + 1e-8)
        fill = lp.mean(0).exp().to(power.dtype) if lp.numel() else torch.ones(F, dtype=power.dtype)
    fill = fill.reshape(F).to(device=power.device, dtype=power.dtype)
    frame_mask = torch.zeros(B, T, dtype=torch.bool)
    bins = torch.zeros(B, F, dtype=torch.bool)
    snr = torch.full((B,), float("inf"), dtype=torch.float64)
    lengths = m.sum(1).cpu().tolist()
    c = config
    for b in range(B):
        n = int(lengths[b])
        # the draws are made in the same order for every item, whatever the options that are off
        u = torch.rand(3, generator=generator, dtype=torch.float64)
        if c.p_noise > 0 and float(u[2]) < c.p_noise and n > 0:
            lo, hi = float(c.snr_db[0]), float(c.snr_db[1])
            s = lo + (hi - lo) * float(torch.rand(1, generator=generator, dtype=torch.float64))
            snr[b] = s
            sig2 = float(out[b, :n].double().mean()) / 10 ** (s / 10)
            noise = torch.randn(n, F, 2, generator=generator, dtype=torch.float64) * math.sqrt(sig2 / 2)
            amp = out[b, :n].double().sqrt().cpu()
            out[b, :n] = ((amp + noise[..., 0]).pow(2) + noise[..., 1].pow(2)).to(out.dtype).to(out.device)
        if c.p_frames > 0 and float(u[0]) < c.p_frames and c.max_frames > 0:
            frame_mask[b, :n] = _runs(n, c.n_frame_masks, c.max_frames, generator)
        if c.p_bands > 0 and float(u[1]) < c.p_bands and c.max_bins > 0:
            bins[b] = _runs(F, c.n_band_masks, c.max_bins, generator)
    frame_mask = frame_mask.to(power.device) & m
    bins = bins.to(power.device)
    cover = frame_mask.unsqueeze(-1) | (bins.unsqueeze(1) & m.unsqueeze(-1))
    out = torch.where(cover, fill.expand_as(out), out)
    level = torch.where(frame_mask, torch.ones_like(power[..., 0]), bins.to(power.dtype).mean(-1, keepdim=True)
                        .expand(B, T) * m.to(power.dtype))
    return AudioDegradation(out, frame_mask, level, snr)
