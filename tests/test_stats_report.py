"""Statistics of the report: bootstrap CI coverage, Wilcoxon vs scipy, Holm, effect sizes, counts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from benchmark.report.stats import (bootstrap_ci, has_model_mask, holm, paired_tests, rank_biserial, select_systems, summarize,
                                    wilcoxon_paired)


def test_bootstrap_ci_covers_true_mean_at_about_nominal_rate():
    rng = np.random.default_rng(123)
    reps, hits = 300, 0
    for i in range(reps):
        x = rng.normal(2.0, 1.5, size=40)
        lo, hi = bootstrap_ci(x, n_boot=500, ci=0.95, seed=i)
        hits += lo <= 2.0 <= hi
    cover = hits / reps
    print(f"bootstrap 95% CI coverage on N(2, 1.5), n=40: {cover:.3f}")
    assert 0.89 <= cover <= 0.99


def test_bootstrap_is_seeded_nan_aware_and_degenerate_cases():
    x = np.array([1.0, 2.0, np.nan, 4.0, 8.0])
    a = bootstrap_ci(x, n_boot=300, seed=5)
    b = bootstrap_ci(x[np.isfinite(x)], n_boot=300, seed=5)
    assert a == b
    assert all(np.isnan(bootstrap_ci([3.0], n_boot=50)))
    assert all(np.isnan(bootstrap_ci([np.nan, np.nan], n_boot=50)))


def test_cluster_bootstrap_is_wider_for_correlated_rows():
    rng = np.random.default_rng(0)
    utt_effect = rng.normal(0, 2, size=8)
    vals = np.repeat(utt_effect, 20) + rng.normal(0, 0.1, size=160)
    clusters = np.repeat(np.arange(8), 20)
    lo_i, hi_i = bootstrap_ci(vals, n_boot=1000, seed=1)
    lo_c, hi_c = bootstrap_ci(vals, clusters=clusters, n_boot=1000, seed=1)
    assert (hi_c - lo_c) > 2.5 * (hi_i - lo_i)


def test_wilcoxon_matches_scipy():
    rng = np.random.default_rng(7)
    a = rng.normal(0.3, 1, 30)
    b = rng.normal(0, 1, 30)
    w = wilcoxon_paired(a, b)
    ref = sps.wilcoxon(a - b)
    assert w.statistic == pytest.approx(float(ref.statistic))
    assert w.pvalue == pytest.approx(float(ref.pvalue))
    assert w.n_pairs == 30
    a[3] = np.nan  # pairs with a NaN are dropped
    w2 = wilcoxon_paired(a, b)
    ok = np.isfinite(a)
    assert w2.n_pairs == 29
    assert w2.pvalue == pytest.approx(float(sps.wilcoxon(a[ok] - b[ok]).pvalue))


def test_holm_known_case():
    adj = holm([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(adj[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(adj[4])
    assert holm([0.9, 0.8]).max() <= 1.0


def test_rank_biserial():
    assert rank_biserial([1, 2, 3]) == 1.0
    assert rank_biserial([-1, -2]) == -1.0
    assert rank_biserial([1, -1]) == 0.0
    assert np.isnan(rank_biserial([0, 0]))


def _table(n_utt=10, shift=1.0):
    rng = np.random.default_rng(0)
    rows = []
    for u in range(n_utt):
        for snr in (-5.0, 5.0):
            base = rng.normal(snr, 1)
            for mid, fusion, algo, d in (("a-vae", None, "ldem", 0.0), ("av-vae/concat", "concat", "ldem", 0.2),
                                         ("av-vae/gated", "gated", "ldem", shift), ("", None, "noisy", -3.0)):
                rows.append({"utt_id": f"u{u}", "condition_id": f"c{snr}", "snr_db": snr, "model_id": mid,
                             "model": mid.split("/")[0], "fusion": fusion, "algorithm": algo,
                             "system": mid or algo, "si_sdr": base + d + rng.normal(0, 0.05), "status": "ok"})
    return pd.DataFrame(rows)


def test_summarize_counts_nan_and_failed_rows():
    df = _table()
    i = df.index[df["system"] == "av-vae/gated"][:3]
    df.loc[i, "si_sdr"] = np.nan
    df.loc[i[:2], "status"] = "failed"
    s = summarize(df, "si_sdr", ["system"], n_boot=100).set_index("system")
    assert s.loc["av-vae/gated", "n"] == 20
    assert s.loc["av-vae/gated", "n_nan"] == 3
    assert s.loc["av-vae/gated", "n_failed"] == 2
    assert s.loc["av-vae/gated", "n_valid"] == 17
    assert s.loc["a-vae", "ci_low"] <= s.loc["a-vae", "mean"] <= s.loc["a-vae", "ci_high"]
    # u0 has no valid row left (both its SNRs NaN): 9 utterances carry the mean
    assert s.loc["av-vae/gated", "n_utterances"] == 9 and s.loc["av-vae/gated", "n_seeds"] == 1
    with pytest.raises(KeyError, match="pesq_wb"):
        summarize(df, "pesq_wb")


def test_paired_tests_default_references_and_effect_sizes():
    df = _table(shift=1.0)
    assert select_systems(df, ["fusion=concat", "model=a-vae"]) == ["av-vae/concat", "a-vae"]
    t = paired_tests(df, "si_sdr", n_boot=200)
    pairs = set(zip(t["system"], t["reference"]))
    assert ("av-vae/gated", "av-vae/concat") in pairs and ("av-vae/gated", "a-vae") in pairs
    assert not any(s == "noisy" or r == "noisy" for s, r in pairs)  # baselines (no model) not tested
    g = t[(t["system"] == "av-vae/gated") & (t["reference"] == "av-vae/concat")].iloc[0]
    assert g["n_pairs"] == 20
    assert g["mean_diff"] == pytest.approx(0.8, abs=0.1)
    assert g["diff_ci_low"] < 0.8 < g["diff_ci_high"]
    assert g["rank_biserial"] == pytest.approx(1.0)
    assert g["p_holm"] < 0.001
    assert (t["p_holm"] >= t["p"] - 1e-15).all()
    by = paired_tests(df, "si_sdr", by=["snr_db"], n_boot=0)
    assert set(by["snr_db"]) == {-5.0, 5.0}
    assert by["diff_ci_low"].isna().all()


def test_has_model_mask_treats_nan_and_blank_model_ids_as_baselines():
    df = pd.DataFrame({"model_id": ["a-vae", np.nan, "", "  ", "av-vae/concat"]})
    assert has_model_mask(df).tolist() == [True, False, False, False, True]
    assert has_model_mask(pd.DataFrame({"x": [1, 2]})).tolist() == [True, True]
