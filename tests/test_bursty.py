"""The bursty corruption: a few corrupted segments in clean video, levels exactly where it changed."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.conditions.corruptions import CORRUPTIONS, CorruptionError, apply_corruption
from benchmark.conditions.corruptions.bursty import (
    BurstyConfig, burst_length, burst_schedule, corrupted_frames, make_bursty, n_bursts,
)
from test_corruptions_levels import _lips

KINDS = ["bursty", "bursty-blur"]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a boolean vector."""
    d = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), (ends - starts).tolist()))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("severity", [0.1, 0.5, 1.0])
def test_clean_outside_bursts_corrupted_inside(kind, severity):
    x = _lips(75)
    out, level = apply_corruption(x, f"{kind}@{severity}", seed=4)
    inside = level > 0
    assert inside.any() and (~inside).any()
    np.testing.assert_array_equal(out[~inside], x[~inside])  # bit-identical outside the bursts
    assert np.all(np.any(out[inside] != x[inside], axis=(1, 2)))  # every frame with a level changed
    runs = _runs(inside)
    assert len(runs) == n_bursts(severity)  # separate segments, as many as the severity says
    assert inside.sum() == corrupted_frames(75, severity)
    # the inner corruption runs at severity 1: the level inside the bursts is 1
    assert np.all(level[inside] == 1.0)


def test_schedule_follows_documented_parameters():
    assert [n_bursts(s) for s in (0.0, 0.2, 0.25, 0.5, 0.74, 0.75, 1.0)] == [1, 1, 2, 2, 2, 3, 3]
    assert [burst_length(s) for s in (0.0, 0.5, 1.0)] == [5, 10, 15]
    assert corrupted_frames(200, 1.0) == 45 and corrupted_frames(60, 1.0) == 30  # capped at half the video
    for n in (1, 2, 3, 7, 20, 75):
        for s in (0.1, 0.5, 1.0):
            groups = burst_schedule(n, s, np.random.default_rng(n))
            idx = np.concatenate(groups) if groups else np.array([], int)
            assert len(idx) == corrupted_frames(n, s) <= n // 2
            assert len(set(idx.tolist())) == len(idx) and (len(idx) == 0 or idx.max() < n)
            assert all(np.all(np.diff(g) == 1) for g in groups)  # contiguous
            assert all(b[0] > a[-1] + 1 for a, b in zip(groups, groups[1:]))  # sorted, a clean frame between


def test_deterministic_and_seed_dependent():
    x = _lips(75)
    a = apply_corruption(x, "bursty@0.6", seed=11)
    b = apply_corruption(x, "bursty@0.6", seed=11)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = apply_corruption(x, "bursty@0.6", seed=12)
    assert not np.array_equal(a[1], c[1])  # bursts elsewhere with another seed


@pytest.mark.parametrize("kind", KINDS)
def test_corrupted_fraction_monotone_in_severity(kind):
    for n in (40, 75, 120):
        x = _lips(n, seed=n)
        for seed in range(3):
            frac = [np.mean(apply_corruption(x, f"{kind}@{s}", seed)[1] > 0) for s in np.linspace(0.05, 1.0, 12)]
            assert all(f1 <= f2 for f1, f2 in zip(frac, frac[1:])), frac
            assert frac[0] < frac[-1] <= 0.5


def test_inner_corruption_configurable():
    x = _lips(60)
    drop = make_bursty(BurstyConfig(inner="frame-drop"))
    out, level = drop(x, 0.5, np.random.default_rng(0))
    inside = level > 0
    assert not out[inside].any()  # frame-drop inside: black frames, level 1
    np.testing.assert_array_equal(out[~inside], x[~inside])
    follow = make_bursty(BurstyConfig(inner="occlusion", inner_severity=None))
    _, level = follow(x, 0.4, np.random.default_rng(0))
    assert set(np.unique(level[level > 0]).tolist()) == {np.float32(0.4)}  # the inner level is reported
    with pytest.raises(CorruptionError):
        BurstyConfig(inner="bursty")
    with pytest.raises(CorruptionError):
        BurstyConfig(inner_severity=0.0)


def test_registered_with_docs():
    for k in KINDS:
        assert k in CORRUPTIONS and "Bursts" in CORRUPTIONS.doc(k)
