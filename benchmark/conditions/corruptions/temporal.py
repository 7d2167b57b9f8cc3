"""Temporal corruptions: ``frame-drop``, ``freeze``, ``low-fps``, ``offset`` and ``missing``
(frames lost, repeated, held or shifted in time); the parameters are in the package docstring
(:mod:`benchmark.conditions.corruptions`).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from benchmark.conditions.corruptions import MAX_FPS_DIVISOR, MAX_OFFSET_FRAMES, corruption, frame_schedule


def _lost_frames(frames: np.ndarray, s: float, rng: np.random.Generator, fraction: Optional[float],
                 fill: Callable[[np.ndarray], np.ndarray | int]) -> tuple[np.ndarray, np.ndarray]:
    """50 % * severity of the frames (or ``fraction``; bursts + scattered) replaced by
    ``fill(idx)``; level 1 there (their content is gone)."""
    out = frames.copy()
    level = np.zeros(len(frames), np.float32)
    for idx in frame_schedule(len(frames), 0.5 * s if fraction is None else fraction, rng, scattered=0.3):
        out[idx] = fill(idx)
        level[idx] = 1.0
    return out, level


@corruption("frame-drop")
def frame_drop(frames, s, rng, *, fraction=None):
    """Frame drops: 50 % * severity of the frames (bursts + scattered) replaced by black; level 1."""
    return _lost_frames(frames, s, rng, fraction, lambda idx: 0)


@corruption("freeze")
def freeze(frames, s, rng, *, fraction=None):
    """Frozen frames: 50 % * severity of the frames (bursts + scattered) repeat the last good frame; level 1."""
    return _lost_frames(frames, s, rng, fraction, lambda idx: frames[max(int(idx[0]) - 1, 0)])


@corruption("low-fps")
def low_fps(frames, s, rng, *, fraction=None):
    """Lower frame rate: keep every k-th frame, k = 1 + round(4 * severity) (25 -> 5 fps), hold it k frames."""
    n = len(frames)
    k = 1 + int(round((MAX_FPS_DIVISOR - 1) * s))
    phase = int(rng.integers(k))
    i = np.arange(n)
    src = np.clip(((i - phase) // k) * k + phase, 0, n - 1)
    return frames[src], np.where(src != i, s, 0.0).astype(np.float32)


def offset_frames(s: float) -> int:
    """AV offset in frames for severity ``s`` (up to 10 frames = 400 ms at 25 fps)."""
    return int(round(MAX_OFFSET_FRAMES * s))


@corruption("offset")
def av_offset(frames, s, rng, *, fraction=None):
    """Audio-visual offset: lips shifted by round(10 * severity) frames (random direction; edges repeated)."""
    n = len(frames)
    shift = offset_frames(s) * (1 if rng.random() < 0.5 else -1)
    src = np.clip(np.arange(n) - shift, 0, n - 1)
    return frames[src], np.where(src != np.arange(n), s, 0.0).astype(np.float32)


@corruption("missing")
def missing(frames, s, rng, *, fraction=None):
    """Missing video: every frame blank (black) for any severity > 0; level 1."""
    return np.zeros_like(frames), np.ones(len(frames), np.float32)
