"""Visual corruptions of uint8 lip frames ``N x H x W`` with a per-frame corruption level.

Every corruption in :data:`CORRUPTIONS` is ``fn(frames, severity, rng, *, fraction=None) ->
(frames, level)``: ``severity`` in [0, 1] maps to the physical parameters below, ``level`` is a
float32 ``[N]`` in [0, 1] (0 = the frame is untouched and **bit-identical** to the input, > 0 =
the frame was changed; the ground truth the reliability diagnostics compare against). The level
of a corrupted frame is the severity of the corruption that changed it (1 for frames whose
content is gone or from another time: drop, freeze, missing). Severity 0 is the identity.

This package is light on purpose (numpy + OpenCV only): ``models/`` imports it for training
augmentation. Layout: this ``__init__`` holds the registry, the contract (:func:`corruption`,
:func:`finalise`), the shared frame schedules and the spec parser; each family is a module of its
own (``occlusion``, ``spatial``, ``temporal``, ``bursty``), found by the registry on first lookup
(the first three are also re-exported here); a new corruption is a new module that decorates its
function with :func:`corruption`.

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


# ---------------------------------------------------------------------------------------------
# the built-in corruption families, one module each (the registry would also discover them on
# first lookup; imported here so that their helpers stay importable from this package)

from benchmark.conditions.corruptions.occlusion import (  # noqa: E402
    OCCLUDER_PROBS, OCCLUDER_STYLES, make_occluder, occlusion, occlusion_center,
)
from benchmark.conditions.corruptions.spatial import (  # noqa: E402
    gaussian_blur, jpeg, jpeg_quality, lighting, low_resolution, motion_blur, motion_kernel, pixel_noise, salt_pepper,
)
from benchmark.conditions.corruptions.temporal import (  # noqa: E402
    av_offset, frame_drop, freeze, low_fps, missing, offset_frames,
)
