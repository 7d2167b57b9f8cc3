"""Exact-SNR mixing of clean speech and noise (pure, seeded).

``mix(clean, noise, snr_db, seed)`` picks the noise segment with ``seed``, scales it so that the
SNR of the float32 signals actually summed equals ``snr_db`` (to well within 0.01 dB), and
returns ``(mixture, scaled_noise, info)`` with ``mixture == clean * info["clean_gain"] +
scaled_noise`` (float32 arithmetic).

SNR definitions (``definition=``):

* ``"energy"`` (default, as in the published unsupervised AVSE work):
  ``10 log10(sum(s^2) / sum(n^2))`` over the whole signal.
* ``"active"``: an **ITU-T P.56-like simplification**, not a P.56 implementation. The clean
  signal is cut into 20 ms frames (10 ms hop, :data:`ACTIVE_FRAME_S`, :data:`ACTIVE_HOP_S`); the
  frame powers ``p_k`` are compared with a threshold ``active_level - 15.9 dB`` (P.56's margin),
  where ``active_level`` is the mean power of the frames above the threshold, found by a
  fixed-point iteration started from all frames within 50 dB of the loudest frame. Samples in
  active frames form the mask; the SNR is ``10 log10(sum(s^2 * m) / sum(n^2 * m))``, i.e. speech
  and noise power over the same active-speech samples. No envelope smoothing or hangover as in
  the real P.56. :func:`active_mask` returns the mask for independent checks.

Other behaviour:

* SNRs outside :data:`SNR_RANGE_DB` (-30 .. 50 dB), silent clean speech or silent noise raise
  :class:`MixError`;
* noise shorter than the clean signal raises :class:`MixError` unless ``allow_loop=True``, in
  which case it is looped with an equal-power raised-cosine crossfade of ``crossfade_s``;
* ``peak_normalise=True`` scales clean, noise and mixture together so that the mixture peak is
  ``peak_level`` (the SNR is unchanged); ``info["clean_gain"]`` is that scale;
* clipping check: ``info["clip_fraction"]`` is the fraction of mixture samples with
  ``|x| >= 1``; ``on_clip="warn"`` (default; files are written as float WAV, so nothing is
  actually clipped) logs a warning, ``"error"`` raises.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SNR_RANGE_DB = (-30.0, 50.0)
SILENCE_RMS = 1e-5
ACTIVE_FRAME_S = 0.02
ACTIVE_HOP_S = 0.01
ACTIVE_MARGIN_DB = 15.9  # ITU-T P.56 margin between active level and threshold
ACTIVE_FLOOR_DB = 50.0  # frames more than this below the loudest frame never count as active
DEFINITIONS = ("energy", "active")


class MixError(ValueError):
    """Mixing cannot be done as asked (the message names the item when given and the problem)."""


def _where(item: str | None) -> str:
    return f"{item}: " if item else ""


def active_mask(clean: np.ndarray, sr: int = 16000) -> np.ndarray:
    """Boolean per-sample mask of active speech (P.56-like simplification; see module doc)."""
    x = np.asarray(clean, dtype=np.float64).reshape(-1)
    flen, hop = max(1, int(round(ACTIVE_FRAME_S * sr))), max(1, int(round(ACTIVE_HOP_S * sr)))
    if x.size <= flen:
        starts = np.array([0])
    else:
        starts = np.arange(0, x.size - flen + 1, hop)
    csum = np.concatenate([[0.0], np.cumsum(x**2)])
    ends = np.minimum(starts + flen, x.size)
    power = (csum[ends] - csum[starts]) / np.maximum(ends - starts, 1)
    pmax = float(power.max())
    mask = np.zeros(x.size, dtype=bool)
    if pmax <= 0:
        return mask
    active = power >= pmax * 10 ** (-ACTIVE_FLOOR_DB / 10)
    for _ in range(50):
        level = float(power[active].mean())
        new = power >= level * 10 ** (-ACTIVE_MARGIN_DB / 10)
        if np.array_equal(new, active):
            break
        active = new
    for s, e in zip(starts[active], ends[active]):
        mask[s:e] = True
    return mask


def snr_db(clean: np.ndarray, noise: np.ndarray, definition: str = "energy", sr: int = 16000) -> float:
    """SNR in dB of ``clean`` against ``noise`` under ``definition`` (computed in float64)."""
    s = np.asarray(clean, dtype=np.float64).reshape(-1)
    n = np.asarray(noise, dtype=np.float64).reshape(-1)
    if s.size != n.size:
        raise MixError(f"clean ({s.size}) and noise ({n.size}) lengths differ")
    if definition == "energy":
        ps, pn = np.sum(s**2), np.sum(n**2)
    elif definition == "active":
        m = active_mask(s, sr)
        ps, pn = np.sum(s[m] ** 2), np.sum(n[m] ** 2)
    else:
        raise MixError(f"unknown SNR definition {definition!r} (known: {', '.join(DEFINITIONS)})")
    return float(10 * np.log10(ps / pn)) if pn > 0 and ps > 0 else float("nan")


def loop_with_crossfade(x: np.ndarray, n: int, crossfade: int) -> np.ndarray:
    """Repeat ``x`` to ``n`` samples, joining copies with an equal-power raised-cosine crossfade."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size >= n:
        return x[:n].copy()
    c = int(min(max(crossfade, 0), x.size // 2))
    if c == 0:
        return np.tile(x, int(np.ceil(n / x.size)))[:n]
    t = (np.arange(c) + 0.5) / c
    fade_in, fade_out = np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)
    out = x.copy()
    while out.size < n:
        joined = out[-c:] * fade_out + x[:c] * fade_in
        out = np.concatenate([out[:-c], joined, x[c:]])
    return out[:n]


def mix(
    clean: np.ndarray,
    noise: np.ndarray,
    snr_db: float,
    seed: int,
    *,
    definition: str = "energy",
    peak_normalise: bool = False,
    peak_level: float = 0.9,
    allow_loop: bool = False,
    crossfade_s: float = 0.05,
    sr: int = 16000,
    on_clip: str = "warn",
    item: str | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Mix ``clean`` with a seed-chosen segment of ``noise`` at exactly ``snr_db``.

    Returns ``(mixture, scaled_noise, info)`` (float32, same length as ``clean``); ``info`` has
    ``snr_db`` (target), ``snr_measured_db`` (recomputed from the returned float32 signals),
    ``definition``, ``noise_offset``, ``looped``, ``noise_gain``, ``clean_gain``, ``peak``,
    ``clip_fraction``. ``item`` names the item in error messages.
    """
    w = _where(item)
    if definition not in DEFINITIONS:
        raise MixError(f"{w}unknown SNR definition {definition!r} (known: {', '.join(DEFINITIONS)})")
    if not np.isfinite(snr_db) or not SNR_RANGE_DB[0] <= snr_db <= SNR_RANGE_DB[1]:
        raise MixError(f"{w}SNR {snr_db} dB is outside the supported range {SNR_RANGE_DB[0]:g} .. {SNR_RANGE_DB[1]:g} dB")
    if on_clip not in ("warn", "error"):
        raise MixError(f"{w}on_clip must be 'warn' or 'error', got {on_clip!r}")
    s = np.asarray(clean, dtype=np.float32).reshape(-1)
    v = np.asarray(noise, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise MixError(f"{w}clean speech is empty")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(v))):
        raise MixError(f"{w}clean speech or noise contains NaN/inf")
    s_rms = float(np.sqrt(np.mean(s.astype(np.float64) ** 2)))
    if s_rms < SILENCE_RMS:
        raise MixError(f"{w}clean speech is silent (RMS {s_rms:.2e} < {SILENCE_RMS:.0e}); cannot set an SNR")
    n = s.size
    looped = False
    if v.size < n:
        if not allow_loop:
            raise MixError(
                f"{w}noise is shorter than the speech ({v.size} < {n} samples, {v.size / sr:.2f} s < {n / sr:.2f} s) "
                "and looping is not allowed (conditions.allow_noise_loop)"
            )
        v = loop_with_crossfade(v, n, int(round(crossfade_s * sr)))
        looped = True
    offset = 0
    if v.size > n:
        offset = int(np.random.default_rng(int(seed)).integers(0, v.size - n + 1))
    seg = v[offset:offset + n]
    s64 = s.astype(np.float64)
    mask = active_mask(s64, sr) if definition == "active" else np.ones(n, dtype=bool)
    ps = float(np.sum(s64[mask] ** 2))
    pn = float(np.sum(seg[mask] ** 2))
    if pn <= 0 or not np.isfinite(pn) or np.sqrt(np.sum(seg**2) / n) < SILENCE_RMS * 1e-3:
        raise MixError(f"{w}noise segment is silent (offset {offset}); cannot set an SNR")
    gain = float(np.sqrt(ps / (pn * 10 ** (snr_db / 10))))
    scaled = seg * gain
    clean_gain = 1.0
    if peak_normalise:
        peak = float(np.max(np.abs(s64 + scaled)))
        clean_gain = float(peak_level / peak) if peak > 0 else 1.0
    s_out = (s64 * clean_gain).astype(np.float32) if clean_gain != 1.0 else s
    n_out = (scaled * clean_gain).astype(np.float32)
    mixture = s_out + n_out  # float32: exactly the signals summed
    measured = snr_db_of(s_out, n_out, definition, sr, mask if definition == "active" else None)
    clip_fraction = float(np.mean(np.abs(mixture) >= 1.0))
    if clip_fraction > 0:
        msg = f"{w}mixture exceeds full scale on {100 * clip_fraction:.3f}% of samples (peak {np.max(np.abs(mixture)):.2f}); use peak_normalise"
        if on_clip == "error":
            raise MixError(msg)
        log.warning("%s (kept as float; not clipped)", msg)
    info = {
        "snr_db": float(snr_db), "snr_measured_db": measured, "definition": definition, "noise_offset": offset,
        "looped": looped, "noise_gain": gain * clean_gain, "clean_gain": clean_gain,
        "peak": float(np.max(np.abs(mixture))), "clip_fraction": clip_fraction,
        "active_fraction": float(np.mean(mask)),
    }
    return mixture, n_out, info


def snr_db_of(clean: np.ndarray, noise: np.ndarray, definition: str, sr: int = 16000, mask: np.ndarray | None = None) -> float:
    """SNR of two float arrays; for ``"active"`` the mask may be given (else computed from ``clean``)."""
    if definition == "active" and mask is not None:
        s = np.asarray(clean, dtype=np.float64)
        n = np.asarray(noise, dtype=np.float64)
        return float(10 * np.log10(np.sum(s[mask] ** 2) / np.sum(n[mask] ** 2)))
    return snr_db(clean, noise, definition, sr)
