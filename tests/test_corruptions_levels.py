"""Visual corruptions: each changes exactly the frames its level says, leaves others bit-identical."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmark.conditions.corruptions import (
    CORRUPTIONS, CorruptionError, apply_corruption, canonical, frame_schedule, make_occluder, parse_corruption,
    severity_of,
)


def _lips(n=40, size=48, seed=0):
    """Textured frames that change over time (a moving dark ellipse on a noisy background)."""
    r = np.random.default_rng(seed)
    base = cv2.GaussianBlur(r.integers(60, 200, (size, size)).astype(np.uint8), (0, 0), 1.5)
    out = []
    for i in range(n):
        f = base.copy()
        cv2.ellipse(f, (size // 2, size // 2), (size // 4, 2 + (i % 7)), 0, 0, 360, 30, -1)
        out.append(f)
    return np.stack(out)


KINDS = CORRUPTIONS.names()


def test_all_documented_kinds_registered():
    expected = {"occlusion", "occlusion-center", "blur", "motion-blur", "noise", "salt-pepper", "lowres", "jpeg",
                "lighting", "frame-drop", "freeze", "low-fps", "offset", "missing"}
    assert expected <= set(KINDS)
    for k in KINDS:
        assert CORRUPTIONS.doc(k)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("severity", [0.4, 1.0])
def test_level_says_exactly_which_frames_changed(kind, severity):
    x = _lips()
    before = x.copy()
    out, level = CORRUPTIONS.get(kind)(x, severity, np.random.default_rng(5))
    np.testing.assert_array_equal(x, before)  # input not modified in place
    assert out.dtype == np.uint8 and out.shape == x.shape
    assert level.dtype == np.float32 and level.shape == (len(x),)
    assert np.all((level >= 0) & (level <= 1))
    changed = np.any(out != x, axis=(1, 2))
    np.testing.assert_array_equal(changed, level > 0)
    np.testing.assert_array_equal(out[level == 0], x[level == 0])  # untouched frames bit-identical
    assert changed.any(), f"{kind}@{severity} changed nothing"


@pytest.mark.parametrize("kind", KINDS)
def test_severity_zero_is_identity(kind):
    x = _lips(10)
    out, level = CORRUPTIONS.get(kind)(x, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(out, x)
    assert not level.any()


def test_physical_parameters_follow_severity():
    x = _lips(60)
    occ = [np.mean(apply_corruption(x, f"occlusion@{s}", 1)[1] > 0) for s in (0.1, 0.5, 1.0)]
    assert 0.28 <= occ[0] <= occ[1] <= occ[2] <= 0.52  # 30-50 % of the frames
    err = [np.abs(apply_corruption(x, f"noise@{s}", 1)[0].astype(float) - x).mean() for s in (0.2, 0.6, 1.0)]
    assert err[0] < err[1] < err[2]
    # additive noise variance on the [0, 1] scale is about 0.2 * severity before clipping
    gray = np.full((20, 48, 48), 128, np.uint8)
    out, _ = apply_corruption(gray, "noise@0.25", 2)
    assert abs(np.var(out / 255.0) - 0.05) < 0.01
    sharp = [cv2.Laplacian(apply_corruption(x, f"blur@{s}", 1)[0][0], cv2.CV_64F).var() for s in (0.3, 0.6, 1.0)]
    assert sharp[0] > sharp[1] > sharp[2]
    drop = [np.mean(apply_corruption(x, f"frame-drop@{s}", 1)[1] > 0) for s in (0.2, 1.0)]
    assert drop[0] < drop[1] and abs(drop[1] - 0.5) < 0.05
    miss, lv = apply_corruption(x, "missing@1", 0)
    assert not miss.any() and np.all(lv == 1)


def test_offset_shifts_frames():
    x = _lips(30)
    out, level = CORRUPTIONS.get("offset")(x, 0.5, np.random.default_rng(3))  # 5 frames
    shifted_fwd = np.array_equal(out[5:], x[:-5])
    shifted_back = np.array_equal(out[:-5], x[5:])
    assert shifted_fwd or shifted_back


def test_low_fps_holds_frames():
    x = _lips(30)
    out, level = CORRUPTIONS.get("low-fps")(x, 1.0, np.random.default_rng(0))  # keep every 5th
    distinct = {out[i].tobytes() for i in range(len(out))}
    assert len(distinct) <= 30 // 5 + 1
    assert (level > 0).sum() >= 30 * 3 // 5


def test_occluders_include_textured_hand():
    r = np.random.default_rng(0)
    patch, alpha = make_occluder(40, "hand", r)
    assert patch.shape == alpha.shape == (40, 40)
    assert patch[alpha > 0.5].std() > 5  # textured, not flat
    assert 0.2 < alpha.mean() < 0.9  # a shape, not a square
    gp, ga = make_occluder(40, "gray", r)
    assert np.ptp(gp) == 0 and ga.min() == 1


def test_frame_schedule_bursts_and_scattered():
    r = np.random.default_rng(1)
    groups = frame_schedule(100, 0.4, r, scattered=0.2)
    idx = np.concatenate(groups)
    assert len(idx) == 40 and len(set(idx.tolist())) == 40
    bursts = [g for g in groups if len(g) > 1]
    assert 1 <= len(bursts) <= 3 and all(np.all(np.diff(g) == 1) for g in bursts)
    assert sum(len(g) == 1 for g in groups) >= 8 - 3  # ~20 % scattered single frames


def test_composition_and_determinism():
    x = _lips(50)
    out, level = apply_corruption(x, "occlusion@0.5+blur@0.3:0.4", seed=9)
    out2, level2 = apply_corruption(x, "occlusion@0.5+blur@0.3:0.4", seed=9)
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(level, level2)
    _, occ = apply_corruption(x, "occlusion@0.5", seed=9)
    assert np.all(level >= occ)
    np.testing.assert_allclose(np.unique(level), [0.0, 0.3, 0.5], atol=1e-6)
    changed = np.any(out != x, axis=(1, 2))
    np.testing.assert_array_equal(changed, level > 0)
    other, _ = apply_corruption(x, "occlusion@0.5+blur@0.3:0.4", seed=10)
    assert not np.array_equal(out, other)
    ident, zero = apply_corruption(x, "none", seed=1)
    np.testing.assert_array_equal(ident, x)
    assert zero.dtype == np.float32 and not zero.any()


def test_parse_errors_name_the_problem():
    assert [s.kind for s in parse_corruption("occlusion@0.5+blur@0.3")] == ["occlusion", "blur"]
    assert canonical(" blur@0.50 ") == "blur@0.5" and canonical("NONE") == "none"
    assert severity_of("occlusion@0.5+blur@0.7") == 0.7 and severity_of("none") == 0.0
    assert parse_corruption("missing")[0].severity == 1.0
    with pytest.raises(CorruptionError, match="unknown corruption 'blurr'"):
        parse_corruption("blurr@0.3")
    with pytest.raises(CorruptionError, match="outside"):
        parse_corruption("blur@1.5")
    with pytest.raises(CorruptionError, match="cannot parse"):
        parse_corruption("blur@@0.3")
    with pytest.raises(CorruptionError, match="uint8"):
        apply_corruption(np.zeros((3, 8, 8), np.float32), "blur@0.5", 0)
