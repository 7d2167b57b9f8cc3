"""Occlusion corruptions: ``occlusion`` (a gray, hand-like or textured-object occluder at a
random position near the crop centre, following the mouth) and ``occlusion-center`` (fixed at
the centre); the parameters are in the package docstring (:mod:`benchmark.conditions.corruptions`).
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from benchmark.conditions.corruptions import CorruptionError, corruption, frame_schedule


def _soft(alpha: np.ndarray, px: float) -> np.ndarray:
    if px <= 0:
        return alpha
    k = 2 * int(np.ceil(2 * px)) + 1
    return cv2.GaussianBlur(alpha, (k, k), px)


def make_occluder(side: int, style: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An occluder patch (float32 intensities 0..255) and its alpha ([0, 1]) of ``side`` px.

    Styles: ``gray`` (flat square), ``hand`` (palm + 3-4 fingers with skin-like shading and
    dark creases), ``object`` (a textured blob)."""
    side = max(2, int(side))
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    if style == "gray":
        return np.full((side, side), float(rng.uniform(80, 180)), np.float32), np.ones((side, side), np.float32)
    tex = cv2.GaussianBlur(rng.standard_normal((side, side)).astype(np.float32), (0, 0), max(side / 12, 0.8))
    tex /= max(float(np.abs(tex).max()), 1e-6)
    alpha = np.zeros((side, side), np.float32)
    if style == "hand":
        base = float(rng.uniform(140, 210))
        ang = float(rng.uniform(-0.5, 0.5))
        c = (int(side * 0.5), int(side * 0.68))
        cv2.ellipse(alpha, c, (int(side * 0.36), int(side * 0.3)), np.degrees(ang), 0, 360, 1.0, -1)
        n_f = int(rng.integers(3, 5))
        for i in range(n_f):
            x0 = side * (0.22 + 0.56 * i / max(n_f - 1, 1))
            top = side * rng.uniform(0.02, 0.2)
            cv2.line(alpha, (int(x0), int(side * 0.6)), (int(x0 + side * 0.08 * np.sin(ang)), int(top)), 1.0,
                     thickness=max(1, int(side * 0.15)), lineType=cv2.LINE_AA)
        img = base * (0.85 + 0.15 * (1 - yy)) + 18 * tex  # light from above, skin texture
        for i in range(n_f - 1):  # creases between fingers
            xc = int(side * (0.22 + 0.56 * (i + 0.5) / max(n_f - 1, 1)))
            img[: int(side * 0.55), max(0, xc - 1):xc + 1] -= 45
        return np.clip(img, 0, 255).astype(np.float32), np.clip(_soft(alpha, side / 40), 0, 1)
    if style == "object":
        pts = []
        for k in range(7):
            a = 2 * np.pi * k / 7 + rng.uniform(-0.3, 0.3)
            r = side * rng.uniform(0.32, 0.48)
            pts.append((side / 2 + r * np.cos(a), side / 2 + r * np.sin(a)))
        cv2.fillPoly(alpha, [np.array(pts, np.int32)], 1.0, lineType=cv2.LINE_AA)
        img = float(rng.uniform(30, 220)) + 60 * tex + 25 * np.sin(2 * np.pi * rng.uniform(2, 5) * (xx + yy))
        return np.clip(img, 0, 255).astype(np.float32), np.clip(_soft(alpha, side / 40), 0, 1)
    raise CorruptionError(f"unknown occluder style {style!r} (gray, hand, object)")


OCCLUDER_STYLES = ("gray", "hand", "object")
OCCLUDER_PROBS = (0.25, 0.5, 0.25)


def _paste(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, cx: int, cy: int) -> np.ndarray:
    h, w = frame.shape
    side = patch.shape[0]
    x0, y0 = cx - side // 2, cy - side // 2
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if fx1 <= fx0 or fy1 <= fy0:
        return frame
    out = frame.astype(np.float32)
    a = alpha[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    p = patch[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    out[fy0:fy1, fx0:fx1] = a * p + (1 - a) * out[fy0:fy1, fx0:fx1]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _occlude(frames: np.ndarray, s: float, rng: np.random.Generator, fraction: Optional[float], fixed: bool):
    n, h, w = frames.shape
    frac = 0.3 + 0.2 * s if fraction is None else fraction
    side = int(round((0.25 + 0.45 * s) * min(h, w)))
    out = frames.copy()
    level = np.zeros(n, np.float32)
    for idx in frame_schedule(n, frac, rng, scattered=0.2):
        style = OCCLUDER_STYLES[int(rng.choice(len(OCCLUDER_STYLES), p=OCCLUDER_PROBS))]
        patch, alpha = make_occluder(side, style, rng)
        if fixed:
            cx, cy = w // 2, h // 2
        else:
            cx, cy = int(rng.uniform(0.3, 0.7) * w), int(rng.uniform(0.35, 0.75) * h)
        for i in idx:
            if not fixed:  # follow the mouth: small random walk
                cx = int(np.clip(cx + rng.integers(-1, 2), 0, w - 1))
                cy = int(np.clip(cy + rng.integers(-1, 2), 0, h - 1))
            out[i] = _paste(frames[i], patch, alpha, cx, cy)
            level[i] = s
    return out, level


@corruption("occlusion")
def occlusion(frames, s, rng, *, fraction=None):
    """Occluding patch (gray, hand-like or textured object; size by severity) over 30-50 % of the frames in bursts + scattered frames."""
    return _occlude(frames, s, rng, fraction, fixed=False)


@corruption("occlusion-center")
def occlusion_center(frames, s, rng, *, fraction=None):
    """Occlusion as 'occlusion' but with the patch fixed at the centre of the mouth crop."""
    return _occlude(frames, s, rng, fraction, fixed=True)
