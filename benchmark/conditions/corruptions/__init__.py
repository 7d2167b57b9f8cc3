"""Visual corruptions of uint8 lip frames ``N x H x W`` with a per-frame corruption level.

Every corruption in :data:`CORRUPTIONS` is ``fn(frames, severity, rng, *, fraction=None) ->
(frames, level)``: ``severity`` in [0, 1] maps to the physical parameters below, ``level`` is a
float32 ``[N]`` in [0, 1] (0 = the frame is untouched and **bit-identical** to the input, > 0 =
the frame was changed; the ground truth the reliability diagnostics compare against). The level
of a corrupted frame is the severity of the corruption that changed it (1 for frames whose
content is gone or from another time: drop, freeze, missing). Severity 0 is the identity.

This module is light on purpose (numpy + OpenCV only): ``models/`` imports it for training
augmentation.

Severity -> parameters (``s`` = severity, ``c = min(H, W) / 96`` scales spatial sizes from the
96-px reference mouth crop of the AVSR literature; defaults from
``docs/references.md`` section B6):

================  ===================================================================  ===============
kind              physical parameters                                                  frames (default)
================  ===================================================================  ===============
occlusion         square-ish patch of side (0.25 + 0.45 s) * min(H, W), random position  30-50 % (0.3 +
                  per burst near the crop centre, jittering +/-1 px per frame; style per  0.2 s): 1-3
                  burst: flat gray, hand-like textured occluder (palm + fingers, skin      bursts + 20 %
                  shading, creases), or textured blob object; alpha-blended               scattered frames
occlusion-center  as occlusion, but the patch is fixed at the crop centre                 as occlusion
blur              Gaussian blur, sigma = 2 s c px (AV-RelScore: sigma up to 2)            all
motion-blur       line kernel of length 1 + 8 s c px, angle ~ U(-45, 45) deg per call     all
noise             additive Gaussian pixel noise, variance 0.2 s on [0, 1] (AV-RelScore)   all
salt-pepper       a fraction 0.27 s of the pixels set to 0 or 255 (ImageNet-C level 5)   all
lowres            down-sample by 1 - 0.75 s (area), up-sample back (bilinear)             all
jpeg              JPEG re-encoding (cv2.imencode), quality round(95 - 90 s)               all
lighting          multiplicative light gradient across the crop, darken or brighten by    all
                  up to 70 s % (random direction and sign per call)
frame-drop        dropped frames replaced by black (zeros); level 1                      0.5 s: bursts +
                                                                                          30 % scattered
freeze            frozen frames repeat the last good frame before them; level 1          as frame-drop
low-fps           frame rate divided by k = 1 + round(4 s) (25 -> 5 fps at s = 1),        held frames
                  each kept frame held k frames (random phase)
offset            audio-visual offset: lips shifted by round(10 s) frames (400 ms at 25   all
                  fps), random direction, edge frames repeated
missing           missing video: every frame black (severity > 0); level 1                all
================  ===================================================================  ===============

"frames" is the default fraction of frames a spatial corruption hits; a spec may set it:
``"blur@0.5:0.3"`` blurs 30 % of the frames, in 1-3 contiguous bursts (AV-RelScore-style).

Specs compose with ``+`` (applied left to right, each with its own seeded generator; the level
of a frame is the max over the steps): ``apply_corruption(frames, "occlusion@0.5+blur@0.3",
seed)``. ``"none"`` is the identity with zero levels.
"""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np

from benchmark.registry import Registry

REFERENCE_CROP = 96  # px; the reference mouth-crop size that spatial parameters are quoted at
MAX_OFFSET_FRAMES = 10
MAX_FPS_DIVISOR = 5

CorruptionFn = Callable[..., tuple[np.ndarray, np.ndarray]]
# the corruptions below plus every module of this package (imported on first lookup): a new
# corruption is one new file here that decorates its function with :func:`corruption`
CORRUPTIONS: Registry = Registry("corruption", package="benchmark.conditions.corruptions")


class CorruptionError(ValueError):
    """A corruption spec or its input is invalid (the message says which and why)."""


# ---------------------------------------------------------------------------------------------
# contract enforcement and registration


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise CorruptionError(f"lip frames must be a non-empty uint8 N x H x W array, got {frames.dtype} {frames.shape}")
    return frames


def finalise(original: np.ndarray, out: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Enforce the contract: level-0 frames are bit-identical to the input, and frames left
    unchanged get level 0 (so ``level > 0`` says exactly which frames differ)."""
    out = np.asarray(out, dtype=np.uint8)
    level = np.clip(np.asarray(level, dtype=np.float32), 0.0, 1.0)
    same = np.all(out.reshape(len(out), -1) == original.reshape(len(original), -1), axis=1)
    level[same] = 0.0
    untouched = level == 0
    if untouched.any():
        out = out.copy()
        out[untouched] = original[untouched]
    return out, level


def corruption(name: str) -> Callable[[CorruptionFn], CorruptionFn]:
    """Register ``fn(frames, severity, rng, *, fraction)`` as corruption ``name``, wrapped so that it
    validates its input, treats severity 0 as the identity and enforces :func:`finalise`."""

    def deco(fn: CorruptionFn) -> CorruptionFn:
        @functools.wraps(fn)
        def wrapped(frames: np.ndarray, severity: float, rng: np.random.Generator, *, fraction: Optional[float] = None):
            frames = _check_frames(frames)
            s = float(severity)
            if not 0.0 <= s <= 1.0:
                raise CorruptionError(f"corruption {name!r}: severity must be in [0, 1], got {severity}")
            if fraction is not None and not 0.0 < float(fraction) <= 1.0:
                raise CorruptionError(f"corruption {name!r}: frame fraction must be in (0, 1], got {fraction}")
            if s == 0.0:
                return frames.copy(), np.zeros(len(frames), np.float32)
            out, level = fn(frames, s, rng, fraction=fraction)
            return finalise(frames, out, level)

        CORRUPTIONS.register(name, wrapped)
        return wrapped

    return deco


# ---------------------------------------------------------------------------------------------
# temporal schedules


def _composition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``parts`` non-negative integers summing to ``total`` (uniform random cut points)."""
    if parts <= 1:
        return np.array([total])
    cuts = np.sort(rng.integers(0, total + 1, size=parts - 1))
    return np.diff(np.concatenate([[0], cuts, [total]]))


def frame_schedule(
    n: int, fraction: float, rng: np.random.Generator, *, max_bursts: int = 3, scattered: float = 0.0
) -> list[np.ndarray]:
    """Pick ``round(fraction * n)`` frames (at least one): 1..``max_bursts`` contiguous bursts plus a
    ``scattered`` share of isolated frames. Returns a list of index arrays, one per burst, then
    one per scattered frame; all disjoint."""
    m = int(min(n, max(1, round(fraction * n))))
    if m >= n:
        return [np.arange(n)]
    k = int(round(scattered * m))
    b = m - k
    groups: list[np.ndarray] = []
    taken = np.zeros(n, dtype=bool)
    if b > 0:
        nb = int(min(rng.integers(1, max_bursts + 1), b))
        lengths = 1 + _composition(b - nb, nb, rng)
        gaps = _composition(n - b, nb + 1, rng)
        pos = 0
        for i in range(nb):
            pos += int(gaps[i])
            idx = np.arange(pos, pos + int(lengths[i]))
            groups.append(idx)
            taken[idx] = True
            pos += int(lengths[i])
    if k > 0:
        free = np.flatnonzero(~taken)
        for i in np.sort(rng.choice(free, size=k, replace=False)):
            groups.append(np.array([i]))
    return groups


def _all_or_bursts(n: int, fraction: Optional[float], rng: np.random.Generator) -> list[np.ndarray]:
    if fraction is None or fraction >= 1.0:
        return [np.arange(n)]
    return frame_schedule(n, fraction, rng)


def _scale(frames: np.ndarray) -> float:
    return min(frames.shape[1], frames.shape[2]) / REFERENCE_CROP


def _spatial(frames: np.ndarray, s: float, rng: np.random.Generator, fraction: Optional[float],
             per_group: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``per_group(frames[idx], rng) -> corrupted`` to each scheduled group; level s there."""
    out = frames.copy()
    level = np.zeros(len(frames), np.float32)
    for idx in _all_or_bursts(len(frames), fraction, rng):
        out[idx] = per_group(frames[idx], rng)
        level[idx] = s
    return out, level


def _per_frame(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def g(x: np.ndarray, _rng: np.random.Generator) -> np.ndarray:
        return np.stack([fn(f) for f in x])

    return g


# ---------------------------------------------------------------------------------------------
# occluders


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


# ---------------------------------------------------------------------------------------------
# spatial degradations


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


# ---------------------------------------------------------------------------------------------
# temporal corruptions


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


# ---------------------------------------------------------------------------------------------
# specs: parse, compose, apply


@dataclass(frozen=True)
class CorruptionStep:
    """One step of a corruption spec: ``kind@severity[:fraction]``."""

    kind: str
    severity: float
    fraction: Optional[float] = None

    def __str__(self) -> str:
        frac = "" if self.fraction is None else f":{self.fraction:g}"
        return f"{self.kind}@{self.severity:g}{frac}"


_STEP_RE = re.compile(r"^\s*([A-Za-z][\w-]*)\s*(?:@\s*([0-9.eE+-]+))?\s*(?::\s*([0-9.eE+-]+))?\s*$")


def parse_corruption(spec: str) -> list[CorruptionStep]:
    """Parse ``"none"`` or ``"kind@severity[:fraction]+kind@severity..."`` (severity defaults to 1).

    Raises :class:`CorruptionError` naming the spec and the bad part."""
    if not isinstance(spec, str) or not spec.strip():
        raise CorruptionError(f"corruption spec must be a non-empty string, got {spec!r}")
    if spec.strip().lower() == "none":
        return []
    steps = []
    for part in spec.split("+"):
        m = _STEP_RE.match(part)
        if not m:
            raise CorruptionError(f"corruption spec {spec!r}: cannot parse {part!r} (expected kind@severity, e.g. blur@0.5)")
        kind = m.group(1)
        if kind not in CORRUPTIONS:
            try:
                CORRUPTIONS.get(kind)
            except KeyError as exc:
                raise CorruptionError(f"corruption spec {spec!r}: {exc.args[0]}") from None
        try:
            sev = float(m.group(2)) if m.group(2) is not None else 1.0
            frac = float(m.group(3)) if m.group(3) is not None else None
        except ValueError:
            raise CorruptionError(f"corruption spec {spec!r}: {part!r} has a non-numeric severity or fraction") from None
        if not 0.0 <= sev <= 1.0:
            raise CorruptionError(f"corruption spec {spec!r}: severity {sev:g} of {kind!r} is outside [0, 1]")
        if frac is not None and not 0.0 < frac <= 1.0:
            raise CorruptionError(f"corruption spec {spec!r}: frame fraction {frac:g} of {kind!r} is outside (0, 1]")
        steps.append(CorruptionStep(kind, sev, frac))
    return steps


def canonical(spec: str) -> str:
    """The canonical text of a spec (``"none"`` for the identity)."""
    steps = parse_corruption(spec)
    return "+".join(str(s) for s in steps) if steps else "none"


def severity_of(spec: str) -> float:
    """The largest severity in a spec (0 for ``"none"``)."""
    return max((s.severity for s in parse_corruption(spec)), default=0.0)


def _step_seed(seed: int, index: int, kind: str) -> int:
    text = f"corruption\x1f{int(seed)}\x1f{index}\x1f{kind}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def apply_corruption(frames: np.ndarray, spec: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Apply a (composed) corruption spec with generators seeded from ``(seed, step index, kind)``.

    Returns ``(frames, level)``; the level of a frame is the max over the steps (0 = untouched,
    bit-identical)."""
    original = _check_frames(frames)
    out = original
    level = np.zeros(len(original), np.float32)
    for i, step in enumerate(parse_corruption(spec)):
        fn = CORRUPTIONS.get(step.kind)
        r = np.random.default_rng(_step_seed(seed, i, step.kind))
        out, lv = fn(out, step.severity, r, fraction=step.fraction)
        level = np.maximum(level, lv)
    if out is original:
        return original.copy(), level
    return finalise(original, out, level)
