"""Temporally bursty corruption: a few corrupted segments inside otherwise clean video.

``bursty@s`` leaves most of the video untouched and corrupts a few contiguous segments
("bursts": a hand passing over the mouth, a head turn, a dropped stretch of a stream) with an
*inner* corruption of this package applied at full strength. It is the condition where per-frame
fusion weights matter: a fusion that can tell clean from corrupted frames should use the video
between the bursts and ignore it inside them, which a per-utterance weight cannot do.

Severity -> physical parameters (frames at the corpus frame rate; ms quoted at 25 fps):

- number of bursts ``n_b = 1 + floor(2 s + 1/2)``: 1 (s < 0.25), 2 (0.25 <= s < 0.75), 3;
- burst length ``L = round(5 + 10 s)`` frames (200 ms at s -> 0, 600 ms at s = 1);
- the corrupted total ``T = min(n_b * L, floor(0.5 N))`` for a video of ``N`` frames (at least
  half of the video stays clean; a one-frame video is left clean), split into ``n_b`` bursts of
  near-equal length (the remainder frames given to random bursts); the bursts are separated by at
  least one clean frame and placed uniformly at random (gaps drawn as a uniform random
  composition of the clean frames);
- inside a burst the inner corruption (default ``occlusion`` at severity 1: one occluder over
  the whole burst, 70 % of the crop side) is applied to the burst's frames alone, with
  ``fraction=1``.

``T`` depends on ``(N, s)`` only, so the corrupted share of the video is non-decreasing in the
severity. The per-frame level is the inner corruption's level inside the bursts and 0 outside;
frames outside the bursts are bit-identical to the input (the package's ``finalise`` contract).

Registered kinds: ``bursty`` (occlusion inside) and ``bursty-blur`` (Gaussian blur, sigma 2 px at
the 96-px reference crop, inside). Another inner corruption is one call of :func:`register_bursty`
in a new module of this package, e.g. ``register_bursty("bursty-drop", BurstyConfig(inner="frame-drop"))``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from benchmark.conditions.corruptions import CORRUPTIONS, CorruptionError, CorruptionFn, _composition, corruption

#: burst length at severity 0 and its growth per unit severity (frames)
BASE_LENGTH = 5
LENGTH_PER_SEVERITY = 10
#: the largest share of the video the bursts may cover
MAX_FRACTION = 0.5


@dataclass(frozen=True)
class BurstyConfig:
    """The corruption inside the bursts: ``inner`` (a registered corruption kind, not a bursty
    one) at ``inner_severity`` (None: the bursty corruption's own severity)."""

    inner: str = "occlusion"
    inner_severity: Optional[float] = 1.0

    def __post_init__(self) -> None:
        if self.inner.startswith("bursty"):
            raise CorruptionError(f"bursty corruption: the inner corruption cannot be bursty itself ({self.inner!r})")
        if self.inner_severity is not None and not 0.0 < float(self.inner_severity) <= 1.0:
            raise CorruptionError(f"bursty corruption: inner_severity must be in (0, 1], got {self.inner_severity}")


def n_bursts(severity: float) -> int:
    """Number of bursts at ``severity`` in [0, 1]: 1, 2 or 3."""
    return 1 + int(np.floor(2.0 * float(severity) + 0.5))


def burst_length(severity: float) -> int:
    """Nominal length of one burst in frames at ``severity``: round(5 + 10 s)."""
    return int(round(BASE_LENGTH + LENGTH_PER_SEVERITY * float(severity)))


def corrupted_frames(n: int, severity: float) -> int:
    """Total number of frames in bursts for a video of ``n`` frames: min(n_b * L, floor(n / 2))."""
    return int(min(n_bursts(severity) * burst_length(severity), int(np.floor(MAX_FRACTION * n))))


def burst_schedule(n: int, severity: float, rng: np.random.Generator) -> list[np.ndarray]:
    """The bursts of a video of ``n`` frames: a list of contiguous, disjoint, sorted index arrays
    separated by at least one frame; ``corrupted_frames(n, severity)`` frames in all (none when
    that is 0)."""
    total = corrupted_frames(n, severity)
    nb = min(n_bursts(severity), total)
    if nb == 0:
        return []
    lengths = np.full(nb, total // nb)
    lengths[rng.choice(nb, size=total - int(lengths.sum()), replace=False)] += 1
    gaps = _composition(n - total - (nb - 1), nb + 1, rng)  # total + nb - 1 <= n since total <= n / 2
    gaps[1:-1] += 1  # at least one clean frame between two bursts
    groups, pos = [], 0
    for i in range(nb):
        pos += int(gaps[i])
        groups.append(np.arange(pos, pos + int(lengths[i])))
        pos += int(lengths[i])
    return groups


def make_bursty(config: BurstyConfig) -> CorruptionFn:
    """The raw corruption ``fn(frames, severity, rng, *, fraction=None) -> (frames, level)`` for
    ``config`` (to be registered with :func:`~benchmark.conditions.corruptions.corruption`, which
    adds the input checks and the bit-identity contract). ``fraction`` is not used: the bursts'
    extent is set by the severity (module docstring)."""

    def bursty(frames: np.ndarray, s: float, rng: np.random.Generator, *, fraction: Optional[float] = None):
        inner = CORRUPTIONS.get(config.inner)
        inner_s = s if config.inner_severity is None else float(config.inner_severity)
        out = frames.copy()
        level = np.zeros(len(frames), np.float32)
        for idx in burst_schedule(len(frames), s, rng):
            seg, lv = inner(frames[idx], inner_s, rng, fraction=1.0)
            out[idx] = seg
            level[idx] = lv
        return out, level

    return bursty


def register_bursty(name: str, config: BurstyConfig, doc: str) -> CorruptionFn:
    """Register a bursty corruption with inner corruption ``config`` as kind ``name``."""
    fn = make_bursty(config)
    fn.__doc__ = doc
    fn.__name__ = fn.__qualname__ = name.replace("-", "_")
    return corruption(name)(fn)


bursty = register_bursty(
    "bursty", BurstyConfig(),
    "Bursts of occlusion in clean video: 1-3 segments of 5-15 frames (severity), occluder at severity 1 inside, "
    "at most half the frames.")
bursty_blur = register_bursty(
    "bursty-blur", BurstyConfig(inner="blur"),
    "Bursts of Gaussian blur (sigma 2 px at 96 px, severity 1) in clean video: 1-3 segments of 5-15 frames "
    "(severity), at most half the frames.")
