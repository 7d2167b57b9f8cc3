"""Metric sanity: identity is best, added noise lowers every metric, failures become NaN + reason,
SI-SDR against a reference formula, BSS Eval against mir_eval's public function, parallel == serial."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.metrics import METRICS, bss_decompose, metric_columns, score_input, score_many, score_pair, si_sdr

# every contract below holds for every registered metric; the optional DNSMOS ones (about 20 s to
# start, non-intrusive) have their own test in tests/test_metrics_modes.py
ALL = [n for n in METRICS.names() if not n.startswith("dnsmos_")]


@pytest.fixture(scope="module")
def speech(tiny_corpus):
    from benchmark.corpus.manifest import load_utterance, read_manifest

    df = read_manifest(tiny_corpus)
    utt = load_utterance(tiny_corpus, df[df["split"] == "test"].sort_values("utt_id").iloc[0])
    x = utt.audio[: 24000]  # 1.5 s keeps BSS Eval and PESQ quick
    return x.astype(np.float32)


def _noise(n, seed):
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def test_registry_names_and_columns():
    assert {"si_sdr", "pesq", "stoi", "estoi", "sdr", "sir", "sar"} <= set(METRICS.names())  # the documented ones
    cols = metric_columns(["pesq", "stoi"], "nb")
    assert cols[:5] == ["pesq_nb", "pesq_nb_error", "input_pesq_nb", "input_pesq_nb_error", "delta_pesq_nb"]


def test_identity_is_best_and_noise_lowers_every_metric(speech):
    s = speech
    rms = float(np.sqrt(np.mean(s.astype(np.float64) ** 2)))
    n_mix = _noise(s.size, 1) * rms  # the mixture's noise (0 dB)
    mixture = s + n_mix
    other = _noise(s.size, 2) * rms  # noise the mixture does not contain -> counts as artefact
    inputs = score_input(s, mixture, names=ALL)
    ident = score_pair(s, s, mixture, names=ALL, inputs=inputs)
    rows = []
    for g in (0.05, 0.2, 0.6):
        est = s + g * (0.5 * n_mix + 0.5 * other)
        rows.append(score_pair(s, est, mixture, names=ALL, inputs=inputs))
    for col in ["si_sdr", "pesq_wb", "stoi", "estoi", "sdr", "sir", "sar"]:
        vals = [r[col] for r in rows]
        assert all(r[f"{col}_error"] == "" for r in rows), [r[f"{col}_error"] for r in rows]
        assert vals[0] > vals[1] > vals[2], (col, vals)
        assert ident[col] >= vals[0], (col, ident[col], vals[0])
    assert ident["stoi"] > 0.99 and ident["estoi"] > 0.99 and ident["pesq_wb"] > 4.4
    assert ident["si_sdr"] == math.inf
    # input_* scores the mixture, delta_* is the difference
    r = rows[0]
    assert r["delta_si_sdr"] == pytest.approx(r["si_sdr"] - r["input_si_sdr"])
    assert abs(r["input_si_sdr"]) < 0.5  # the mixture is at 0 dB
    assert score_pair(s, s + 0.05 * n_mix, mixture, names=["si_sdr", "stoi"]) == score_pair(
        s, s + 0.05 * n_mix, mixture, names=["si_sdr", "stoi"], inputs=inputs)


def test_si_sdr_matches_reference_formula():
    r = np.random.default_rng(0)
    s = r.standard_normal(8000) + 0.3
    e = 0.7 * s + 0.4 * r.standard_normal(8000) - 0.1
    # reference formula: with zero-mean signals SI-SDR = 10 log10(rho^2 / (1 - rho^2)), rho = corrcoef
    rho = np.corrcoef(s, e)[0, 1]
    assert si_sdr(s, e) == pytest.approx(10 * np.log10(rho**2 / (1 - rho**2)), abs=1e-9)
    assert si_sdr(s, 5.0 * e) == pytest.approx(si_sdr(s, e), abs=1e-9)  # scale invariant
    sm, em = s - s.mean(), e - e.mean()  # the paper's projection form
    t = (em @ sm) / (sm @ sm) * sm
    assert si_sdr(s, e) == pytest.approx(10 * np.log10((t @ t) / ((em - t) @ (em - t))), abs=1e-9)


def test_bss_decomposition_equals_public_mir_eval():
    import warnings

    from mir_eval.separation import bss_eval_sources

    r = np.random.default_rng(1)
    s, v = r.standard_normal(6000), r.standard_normal(6000)
    est = s + 0.3 * v + 0.1 * r.standard_normal(6000)
    mix = s + v
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdr, sir, sar, _ = bss_eval_sources(np.stack([s, v]), np.stack([est, mix - est]), compute_permutation=False)
    got = bss_decompose(s, v, est)
    np.testing.assert_allclose(got, [sdr[0], sir[0], sar[0]], rtol=1e-9)
    single = score_pair(s, est, names=["sdr"])["sdr"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_sdr = bss_eval_sources(s[None], est[None], compute_permutation=False)[0][0]
    assert single == pytest.approx(ref_sdr, rel=1e-6)
    assert single == pytest.approx(sdr[0], rel=1e-6)  # SDR does not depend on the noise reference


def test_failures_become_nan_with_reason(speech):
    silent = np.zeros_like(speech)
    out = score_pair(speech, silent, names=ALL)
    for col in ["si_sdr", "pesq_wb", "stoi", "estoi", "sdr", "sir", "sar"]:
        assert math.isnan(out[col]) and out[f"{col}_error"], col
    short = score_pair(speech[:1600], speech[:1600] + 0.01, names=["pesq", "stoi"])
    assert math.isnan(short["pesq_wb"]) and "pesq" in short["pesq_wb_error"]
    assert math.isnan(short["stoi"]) and "STFT frames" in short["stoi_error"]
    assert "needs the mixture" in score_pair(speech, speech, names=["sir"])["sir_error"]
    bad = score_pair(speech, speech[: speech.size // 2], names=["si_sdr"])
    assert math.isnan(bad["si_sdr"]) and "length" in bad["si_sdr_error"]
    nan = speech.copy()
    nan[10] = np.nan
    assert "NaN" in score_pair(speech, nan, names=["stoi"])["stoi_error"]


def test_score_many_parallel_equals_serial(speech, tmp_path):
    from benchmark.audio_io import write_audio

    s = speech[:16000]
    pairs = []
    for i, g in enumerate((0.05, 0.3, 1.0)):
        pairs.append({"name": f"p{i}", "ref": s, "est": s + g * _noise(s.size, i) * 0.05, "mixture": s + 0.05 * _noise(s.size, 9)})
    write_audio(tmp_path / "ref.wav", s)
    write_audio(tmp_path / "est.wav", s + 0.01 * _noise(s.size, 5))
    pairs.append({"name": "files", "ref": str(tmp_path / "ref.wav"), "est": str(tmp_path / "est.wav")})
    pairs.append({"name": "missing", "ref": str(tmp_path / "ref.wav"), "est": str(tmp_path / "nope.wav")})
    names = ["si_sdr", "stoi"]
    serial = score_many(pairs, names, jobs=1, progress=False)
    parallel = score_many(pairs, names, jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)
    assert list(serial["name"]) == ["p0", "p1", "p2", "files", "missing"]
    assert serial.loc[4, "si_sdr_error"].startswith("cannot load audio") and math.isnan(serial.loc[4, "si_sdr"])
    assert serial["si_sdr"].iloc[:3].is_monotonic_decreasing
    with pytest.raises(KeyError, match="unknown metric"):
        score_many(pairs[:1], ["pesqq"])
