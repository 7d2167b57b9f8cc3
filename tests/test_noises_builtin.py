"""Built-in noise sources: shape, determinism, train/test separation, corpus-based noises."""
from __future__ import annotations

import numpy as np
import pytest

from noise_sets import NOISES
from noise_sets.builtin import ALIASES, NoiseError, RecordingNoise, make_noise

GENERATED = ["white", "pink", "brown", "car", "street"]
CORPUS_BASED = ["babble", "cafe", "living-room", "speech-shaped"]


@pytest.mark.parametrize("name", GENERATED)
def test_generated_noise_deterministic_and_split_separated(name):
    src = make_noise(name)
    a = src.segment(16000, seed=3, split="test")
    b = src.segment(16000, seed=3, split="test")
    c = src.segment(16000, seed=3, split="train")
    d = src.segment(16000, seed=4, split="test")
    assert a.dtype == np.float32 and a.shape == (16000,)
    assert np.all(np.isfinite(a)) and np.sqrt(np.mean(a.astype(np.float64) ** 2)) > 0.01
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)  # same seed, other split: another random stream
    assert not np.allclose(a, d)


def test_spectral_tilt_of_coloured_noises():
    def low_high_ratio(x):
        p = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(x.size, 1 / 16000)
        return p[(f > 50) & (f < 500)].mean() / p[(f > 4000) & (f < 7000)].mean()

    white, pink, brown = (make_noise(n).segment(32000, 1) for n in ("white", "pink", "brown"))
    assert low_high_ratio(white) < 2 < low_high_ratio(pink) < low_high_ratio(brown)
    car = make_noise("car").segment(32000, 1)
    assert low_high_ratio(car) > low_high_ratio(pink)  # low-frequency rumble


def test_aliases_and_unknown_options():
    for alias, target in ALIASES.items():
        assert alias in NOISES.names()
        assert "alias" in NOISES.doc(alias) and target in NOISES.doc(alias)
    assert np.array_equal(make_noise("White").segment(800, 2), make_noise("white").segment(800, 2))
    with pytest.raises(NoiseError, match="unknown option"):
        make_noise("white", foo=1)
    with pytest.raises(NoiseError, match="unknown split"):
        make_noise("white").segment(10, 1, split="dev")


@pytest.mark.parametrize("name", CORPUS_BASED)
def test_corpus_based_noise_needs_corpus(name):
    with pytest.raises(NoiseError, match="corpus_root"):
        make_noise(name)


@pytest.mark.parametrize("name", CORPUS_BASED)
def test_corpus_based_noises(tiny_corpus, name):
    src = make_noise(name, corpus_root=tiny_corpus)
    a = src.segment(24000, seed=1, split="test")
    assert a.dtype == np.float32 and a.shape == (24000,) and np.all(np.isfinite(a))
    assert np.array_equal(a, make_noise(name, corpus_root=tiny_corpus).segment(24000, seed=1, split="test"))
    assert not np.allclose(a, src.segment(24000, seed=1, split="train"))


def test_babble_pools_are_disjoint_and_from_babble_speakers(tiny_corpus):
    from benchmark.corpus.manifest import read_manifest

    src = make_noise("babble", corpus_root=tiny_corpus, n_talkers=3)
    test_pool, train_pool = src._pool.pool("test"), src._pool.pool("train")
    assert test_pool and train_pool
    tb = {a.tobytes() for _, a in test_pool}
    assert tb.isdisjoint({a.tobytes() for _, a in train_pool})
    df = read_manifest(tiny_corpus)
    babble_spk = set(df.loc[df["split"] == "babble", "speaker"])
    test_spk = set(df.loc[df["split"].isin(["test", "val", "train"]), "speaker"])
    assert {s for s, _ in test_pool + train_pool} <= babble_spk
    assert babble_spk.isdisjoint(test_spk)


def test_recording_noise_regions_disjoint():
    rec = np.arange(10000, dtype=np.float32)
    src = RecordingNoise(recordings=[rec], name="ramp", train_fraction=0.5)
    for seed in range(20):
        te = src.segment(1000, seed, "test")
        tr = src.segment(1000, seed, "train")
        assert te.min() >= 5000 and tr.max() < 5000
    short = src.segment(8000, 0, "test")  # longer than the test region: the whole region comes back
    assert short.size == 5000

