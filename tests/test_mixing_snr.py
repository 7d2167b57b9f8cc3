"""Exact-SNR mixing: recomputed independently for every noise type and both SNR definitions."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.conditions.mixing import MixError, active_mask, loop_with_crossfade, mix
from noise_sets import NOISES
from noise_sets.builtin import ALIASES

# every noise that needs no dataset on disk (the loaders need a root), aliases aside
SELF_CONTAINED = [n for n, f in NOISES.items() if f.__module__ != "noise_sets.loaders" and n not in ALIASES]

SR = 16000


def _speechlike(n=SR * 2, seed=0):
    """Harmonic bursts separated by near-silence (so active and energy SNR differ)."""
    r = np.random.default_rng(seed)
    t = np.arange(n) / SR
    x = sum(np.sin(2 * np.pi * k * 140 * t + r.uniform(0, 6)) / k for k in range(1, 12))
    gate = (np.sin(2 * np.pi * 1.3 * t) > 0.2).astype(float)
    return (0.1 * x * gate + 1e-4 * r.standard_normal(n)).astype(np.float32)


def _energy_snr(s, n):
    s, n = np.asarray(s, np.float64), np.asarray(n, np.float64)
    return 10 * np.log10(np.sum(s**2) / np.sum(n**2))


def _independent_active_mask(s, sr=SR):
    """Straightforward loop version of the documented rule (20 ms frames, 10 ms hop, 15.9 dB
    below the active level, fixed point from frames within 50 dB of the loudest)."""
    s = np.asarray(s, np.float64)
    fl, hop = int(0.02 * sr), int(0.01 * sr)
    frames = [(i, i + fl) for i in range(0, len(s) - fl + 1, hop)]
    power = np.array([np.mean(s[a:b] ** 2) for a, b in frames])
    act = power >= power.max() / 1e5
    while True:
        lvl = power[act].mean()
        new = power >= lvl / 10 ** 1.59
        if (new == act).all():
            break
        act = new
    m = np.zeros(len(s), bool)
    for (a, b), on in zip(frames, act):
        if on:
            m[a:b] = True
    return m


def _active_snr(s, n):
    m = _independent_active_mask(s)
    s, n = np.asarray(s, np.float64), np.asarray(n, np.float64)
    return 10 * np.log10(np.sum(s[m] ** 2) / np.sum(n[m] ** 2))


def test_active_mask_matches_independent_version_and_finds_bursts():
    s = _speechlike()
    m = active_mask(s, SR)
    assert np.array_equal(m, _independent_active_mask(s))
    gate = np.sin(2 * np.pi * 1.3 * np.arange(s.size) / SR) > 0.2
    assert np.mean(m == gate) > 0.95  # the mask follows the bursts (frame edges aside)


@pytest.mark.parametrize("definition", ["energy", "active"])
@pytest.mark.parametrize("noise", SELF_CONTAINED)
def test_snr_exact_for_every_noise(tiny_corpus, noise, definition):
    clean = _speechlike()
    src = NOISES.get(noise)(corpus_root=tiny_corpus)
    seg = src.segment(clean.size + 4000, seed=7, split="test")
    recompute = _energy_snr if definition == "energy" else _active_snr
    for snr in (-15.0, 0.0, 7.5, 30.0):
        mixture, scaled, info = mix(clean, seg, snr, seed=11, definition=definition)
        assert mixture.dtype == np.float32 and scaled.dtype == np.float32 and mixture.shape == clean.shape
        # the signals actually summed: mixture - clean is the returned noise (float32 sum)
        np.testing.assert_array_equal(mixture, clean + scaled)
        assert abs(recompute(clean, scaled) - snr) < 0.01
        assert abs(info["snr_measured_db"] - snr) < 0.01


def test_active_and_energy_definitions_differ_on_gappy_speech():
    clean = _speechlike()
    noise = np.random.default_rng(1).standard_normal(clean.size)
    _, n_e, _ = mix(clean, noise, 5.0, 0, definition="energy")
    _, n_a, _ = mix(clean, noise, 5.0, 0, definition="active")
    # speech occupies ~40 % of the signal: the active-level SNR sets a louder noise
    assert np.sum(n_a.astype(np.float64) ** 2) > 1.5 * np.sum(n_e.astype(np.float64) ** 2)


def test_segment_offset_chosen_by_seed():
    clean = _speechlike(8000)
    noise = np.random.default_rng(2).standard_normal(40000)
    _, a, ia = mix(clean, noise, 0.0, seed=1)
    _, b, ib = mix(clean, noise, 0.0, seed=1)
    _, c, ic = mix(clean, noise, 0.0, seed=2)
    assert np.array_equal(a, b) and ia["noise_offset"] == ib["noise_offset"]
    assert ia["noise_offset"] != ic["noise_offset"]


def test_peak_normalisation_preserves_snr():
    clean = _speechlike()
    noise = np.random.default_rng(3).standard_normal(clean.size)
    mixture, scaled, info = mix(clean, noise, -10.0, 0, peak_normalise=True, peak_level=0.9)
    assert abs(np.max(np.abs(mixture)) - 0.9) < 1e-5
    ref = (clean.astype(np.float64) * info["clean_gain"]).astype(np.float32)
    assert abs(_energy_snr(ref, scaled) - (-10.0)) < 0.01
    np.testing.assert_allclose(mixture, ref + scaled, atol=1e-6)


def test_clipping_check():
    clean = _speechlike()
    noise = np.random.default_rng(4).standard_normal(clean.size)
    _, _, info = mix(clean * 5, noise, -15.0, 0)  # loud: exceeds full scale, kept as float
    assert info["clip_fraction"] > 0
    with pytest.raises(MixError, match="full scale"):
        mix(clean * 5, noise, -15.0, 0, on_clip="error")


def test_errors_are_clear():
    clean = _speechlike(16000)
    noise = np.random.default_rng(5).standard_normal(20000)
    with pytest.raises(MixError, match="outside the supported range"):
        mix(clean, noise, 80.0, 0)
    with pytest.raises(MixError, match="outside the supported range"):
        mix(clean, noise, float("nan"), 0)
    with pytest.raises(MixError, match="silent"):
        mix(np.zeros(16000, np.float32), noise, 0.0, 0, item="utt_x")
    with pytest.raises(MixError, match="utt_x: .*shorter"):
        mix(clean, noise[:8000], 0.0, 0, item="utt_x")
    with pytest.raises(MixError, match="silent"):
        mix(clean, np.zeros(20000), 0.0, 0)
    with pytest.raises(MixError, match="unknown SNR definition"):
        mix(clean, noise, 0.0, 0, definition="loudness")


def test_loop_with_crossfade_when_allowed():
    clean = _speechlike(16000)
    noise = np.random.default_rng(6).standard_normal(5000)
    mixture, scaled, info = mix(clean, noise, 3.0, 0, allow_loop=True, crossfade_s=0.01)
    assert info["looped"] and scaled.size == clean.size
    assert abs(_energy_snr(clean, scaled) - 3.0) < 0.01
    looped = loop_with_crossfade(noise, 16000, 160)
    np.testing.assert_allclose(looped[:4840], noise[:4840])  # the first copy is untouched before the fade
    assert np.all(np.isfinite(looped)) and looped.size == 16000
