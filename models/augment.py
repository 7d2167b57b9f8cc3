"""Visual-reliability augmentation for training on clean speech.

With probability ``p_corrupt`` an utterance's lip frames get one random visual corruption (kind
drawn from ``kinds``, severity ~ U[min_severity, max_severity]) through
:func:`benchmark.conditions.corruptions.apply_corruption` (the same corruptions as the test
conditions); with probability ``p_drop`` the whole video is dropped (all frames zero). The audio
is never touched: training stays on clean speech. The random draws come from
``derive_seed(seed, utt_id, epoch)``, never from process order.

If the corruption module is not importable (or lacks the requested kinds) a small built-in set
is used instead and a warning says so: occlusion (grey patch over bursts of frames), Gaussian
blur, additive Gaussian pixel noise, and frozen frames.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

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
