"""Spatial degradations of every (or a fraction of the) frame(s): ``blur``, ``motion-blur``,
``noise``, ``salt-pepper``, ``lowres``, ``jpeg``, ``lighting``; the parameters are in the package
docstring (:mod:`benchmark.conditions.corruptions`).
"""
from __future__ import annotations

import cv2
import numpy as np

from benchmark.conditions.corruptions import CorruptionError, _per_frame, _scale, _spatial, corruption


@corruption("blur")
def gaussian_blur(frames, s, rng, *, fraction=None):
    """Gaussian blur, sigma = 2 * severity px at the 96-px reference crop (scaled with crop size)."""
    sigma = max(2.0 * s * _scale(frames), 1e-3)
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return _spatial(frames, s, rng, fraction, _per_frame(lambda f: cv2.GaussianBlur(f, (k, k), sigma, borderType=cv2.BORDER_REFLECT)))


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised line kernel of ``length`` px at ``angle_deg``."""
    size = max(1, int(np.ceil(length)))
    size += 1 - size % 2
    k = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = np.cos(np.radians(angle_deg)) * (length - 1) / 2, np.sin(np.radians(angle_deg)) * (length - 1) / 2
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1, cv2.LINE_AA)
    if k.sum() <= 0:
        k[c, c] = 1.0
    return k / k.sum()


@corruption("motion-blur")
def motion_blur(frames, s, rng, *, fraction=None):
    """Motion blur: line kernel of 1 + 8 * severity px (96-px reference crop), random angle in +/-45 deg."""
    kern = motion_kernel(1 + 8 * s * _scale(frames), float(rng.uniform(-45, 45)))
    return _spatial(frames, s, rng, fraction, _per_frame(lambda f: cv2.filter2D(f, -1, kern, borderType=cv2.BORDER_REFLECT)))


@corruption("noise")
def pixel_noise(frames, s, rng, *, fraction=None):
    """Additive Gaussian pixel noise, variance 0.2 * severity on the [0, 1] scale, clipped."""
    std = float(np.sqrt(0.2 * s))

    def g(x, r):
        y = x.astype(np.float32) / 255.0 + r.normal(0.0, std, size=x.shape).astype(np.float32)
        return np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)

    return _spatial(frames, s, rng, fraction, g)


@corruption("salt-pepper")
def salt_pepper(frames, s, rng, *, fraction=None):
    """Salt-and-pepper noise: a fraction 0.27 * severity of the pixels set to 0 or 255."""
    amount = 0.27 * s

    def g(x, r):
        y = x.copy()
        u = r.random(x.shape)
        y[u < amount / 2] = 0
        y[(u >= amount / 2) & (u < amount)] = 255
        return y

    return _spatial(frames, s, rng, fraction, g)


@corruption("lowres")
def low_resolution(frames, s, rng, *, fraction=None):
    """Low resolution: down-sample by a factor 1 - 0.75 * severity (area), up-sample back (bilinear)."""
    h, w = frames.shape[1:]
    f = 1.0 - 0.75 * s
    size = (max(1, int(round(w * f))), max(1, int(round(h * f))))

    def one(x):
        return cv2.resize(cv2.resize(x, size, interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_LINEAR)

    return _spatial(frames, s, rng, fraction, _per_frame(one))


def jpeg_quality(s: float) -> int:
    """JPEG quality for severity ``s``: 95 at 0 down to 5 at 1."""
    return int(round(95 - 90 * s))


@corruption("jpeg")
def jpeg(frames, s, rng, *, fraction=None):
    """JPEG compression artefacts: re-encode with cv2.imencode at quality round(95 - 90 * severity)."""
    q = jpeg_quality(s)

    def one(x):
        ok, buf = cv2.imencode(".jpg", x, [int(cv2.IMWRITE_JPEG_QUALITY), q])
        if not ok:
            raise CorruptionError("JPEG encoding failed")
        return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)

    return _spatial(frames, s, rng, fraction, _per_frame(one))


@corruption("lighting")
def lighting(frames, s, rng, *, fraction=None):
    """Lighting change: a light gradient across the crop that darkens or brightens by up to 70 * severity %."""
    h, w = frames.shape[1:]
    a = float(rng.uniform(0, 2 * np.pi))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = ((xx / max(w - 1, 1) - 0.5) * np.cos(a) + (yy / max(h - 1, 1) - 0.5) * np.sin(a)) / 0.7071 * 0.5 + 0.5  # 0..1
    sign = -1.0 if rng.random() < 0.5 else 1.0
    gain = 1.0 + sign * 0.7 * s * (0.4 + 0.6 * np.clip(d, 0, 1))

    def g(x, _r):
        return np.clip(np.round(x.astype(np.float32) * gain), 0, 255).astype(np.uint8)

    return _spatial(frames, s, rng, fraction, g)
