"""The oracle-noise check (benchmark.analysis.noise_model): the oracle state is the true noise
variance and stays it, both arms run per training seed with the run's EM seeds, the oracle arm
reads the noise signal (and the NMF arm does not), the summary pairs the arms, and the report
shows it."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.analysis.noise_model import (
    ARMS, RESULT_FILE, NoiseCheckConfig, consistency, load_results, oracle_noise_state, run_noise_check, summarize_check,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {"n_iter": 4, "n_chains": 2}


def test_oracle_state_is_the_true_noise_variance_and_the_g_only_m_step_keeps_it():
    from models.enhancement.nmf import m_step

    g = torch.Generator().manual_seed(0)
    P = torch.rand(2, 7, 9, generator=g) + 0.1
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False  # a padded utterance
    st = oracle_noise_state(P, mask)
    WH = st.noise_var()
    torch.testing.assert_close(WH[0], P[0], rtol=0, atol=0)
    torch.testing.assert_close(WH[1, :5], P[1, :5], rtol=0, atol=0)
    assert torch.all(WH[1, 5:] == 0)
    X2 = torch.rand(2, 7, 9, generator=g)
    Vs = torch.rand(3, 2, 7, 9, generator=g) + 0.05
    new = m_step(X2, Vs, st, mask, update="g")
    assert torch.equal(new.W, st.W) and torch.equal(new.H, st.H) and not torch.equal(new.g, st.g)


def _run(tmp_path, seeds=(0, 1)):
    from benchmark.report.synthetic_run import FakeRunSpec, write_fake_run
    from models.checkpoint import save
    from models.vae import AVAE, VAEConfig

    run = write_fake_run(tmp_path / "fake", FakeRunSpec(n_utts=2, noises=["white", "babble"], snrs_db=[0.0, 5.0],
                                                         corruptions=["none"], duration_s=0.6, train_seeds=list(seeds)))
    for s in seeds:
        torch.manual_seed(s)
        save(AVAE(VAEConfig(hidden=16, latent_dim=4)), run / "models" / "a-vae" / f"seed-{s}")
    info = json.loads((run / "run.json").read_text())
    info["spec"]["enhance"] = {"algorithms": ["ldem"], "algorithm_params": {"ldem": FAST}, "nmf_rank": 3, "seed": 5}
    info["spec"]["training"] = {"seed": 0}
    (run / "run.json").write_text(json.dumps(info))
    return run


def test_both_arms_for_every_seed_with_the_runs_em_seeds(tmp_path):
    from benchmark.audio_io import read_audio
    from benchmark.runner.stages.enhance import _load_inputs
    from models.checkpoint import load
    from models.enhancement.api import enhance

    run = _run(tmp_path)
    df = run_noise_check(run, NoiseCheckConfig(snr_db=0.0), progress=False)
    assert (run / RESULT_FILE).exists()
    assert len(df) == 2 * 2 * 2 * 2  # seeds x noises x utterances x arms
    assert set(df["arm"]) == set(ARMS) and set(df["train_seed"]) == {0, 1} and set(df["snr_db"]) == {0.0}
    assert np.all(np.isfinite(df["si_sdr"])) and np.allclose(df["delta_si_sdr"], df["si_sdr"] - df["input_si_sdr"])
    wide = df.pivot_table(index=["train_seed", "item_id"], columns="arm", values="si_sdr")
    assert not np.allclose(wide["nmf"], wide["oracle-noise"])
    # the NMF arm is the run's enhancement of that seed's checkpoint with its EM seed (5 + 1 - 0)
    mix = pd.read_parquet(run / "mixtures.parquet")
    it = mix[(mix["snr_db"] == 0.0) & (mix["noise"] == "babble")].sort_values("utt_id").iloc[[0]]
    (o,) = enhance(load(run / "models" / "a-vae" / "seed-1"), "ldem", _load_inputs(run, it.to_dict("records"), False),
                   params=FAST, nmf_rank=3, seed=6, progress=False)
    from benchmark.metrics.sisdr import si_sdr

    want = si_sdr(read_audio(run / it["clean_path"].iloc[0], validate=False), o.estimate)
    got = df[(df["arm"] == "nmf") & (df["train_seed"] == 1) & (df["item_id"] == it["item_id"].iloc[0])]["si_sdr"]
    assert float(got.iloc[0]) == pytest.approx(want, abs=1e-9)

    # the oracle arm reads the noise signal; the NMF arm does not
    import soundfile as sf

    for rel in mix["noise_path"]:
        x = read_audio(run / rel, validate=False)
        sf.write(run / rel, (0.1 * x).astype(np.float32), 16000, subtype="FLOAT")
    df2 = run_noise_check(run, NoiseCheckConfig(snr_db=0.0), progress=False)
    a = df.set_index(["train_seed", "item_id", "arm"])["si_sdr"]
    b = df2.set_index(["train_seed", "item_id", "arm"])["si_sdr"]
    assert np.allclose(a.xs("nmf", level="arm"), b.xs("nmf", level="arm"), rtol=0, atol=1e-9)
    assert not np.allclose(a.xs("oracle-noise", level="arm"), b.xs("oracle-noise", level="arm"))


def test_clear_errors_before_any_enhancement(tmp_path):
    run = _run(tmp_path, seeds=(0,))
    with pytest.raises(FileNotFoundError, match="av-vae/nothing"):
        run_noise_check(run, NoiseCheckConfig(models=["av-vae/nothing"]), progress=False)
    with pytest.raises(ValueError, match=r"no mixture at -10 dB.*\(0\.0, 'none'\)"):
        run_noise_check(run, NoiseCheckConfig(snr_db=-10.0), progress=False)
    with pytest.raises(ValueError, match="mcem"):
        run_noise_check(run, NoiseCheckConfig(algorithm="mcem"), progress=False)


def _rows(diff: float = 1.5) -> pd.DataFrame:
    r = np.random.default_rng(0)
    rows = []
    for seed in (0, 1, 2):
        for u in range(6):
            base = r.normal(-1.0, 1.0)
            for arm, d in (("nmf", base), ("oracle-noise", base + diff + r.normal(0, 0.1))):
                rows.append({"model": "a-vae", "train_seed": seed, "algorithm": "ldem", "arm": arm, "item_id": f"babble/u{u}",
                             "utt_id": f"u{u}", "noise": "babble", "snr_db": 0.0, "corruption": "none",
                             "si_sdr": d, "input_si_sdr": 0.0, "delta_si_sdr": d})
    return pd.DataFrame(rows)


def test_summary_pairs_the_arms_and_consistency_reads_the_runs_rows(tmp_path):
    rows = _rows(1.5)
    res = pd.DataFrame({"item_id": ["babble/u0", "babble/u1"], "algorithm": "oracle-wiener", "delta_si_sdr": [10.0, 12.0]})
    t = summarize_check(rows, res, n_boot=200).iloc[0]
    nmf = rows[rows["arm"] == "nmf"]["delta_si_sdr"].mean()
    orc = rows[rows["arm"] == "oracle-noise"]["delta_si_sdr"].mean()
    assert t["Δ SI-SDR, NMF noise (as run)"].startswith(f"{nmf:+.2f} [")
    assert t["oracle − NMF"].startswith(f"{orc - nmf:+.2f} [") and abs(orc - nmf - 1.5) < 0.1
    lo, hi = (float(v) for v in t["oracle − NMF"].split("[")[1].rstrip("]").split(","))
    assert lo < orc - nmf < hi and t["seeds"] == 3 and t["utterances"] == 6
    assert t["oracle-Wiener Δ SI-SDR"] == "+11.00"
    # consistency: 0 against rows equal to the NMF arm, the gap when one differs
    nmf_rows = rows[rows["arm"] == "nmf"].assign(model_id="a-vae")
    nmf_rows.to_parquet(tmp_path / "results.parquet", index=False)
    assert consistency(rows, load_results(tmp_path)) == 0.0
    nmf_rows.assign(si_sdr=nmf_rows["si_sdr"] + np.r_[0.25, np.zeros(len(nmf_rows) - 1)]).to_parquet(
        tmp_path / "results.parquet", index=False)
    assert consistency(rows, load_results(tmp_path)) == pytest.approx(0.25)


def test_the_report_shows_the_check(tmp_path):
    from benchmark.report.api import write_report
    from benchmark.report.synthetic_run import FakeRunSpec, write_fake_run
    from benchmark.spec import ReportSpec

    run = write_fake_run(tmp_path / "runs" / "fake", FakeRunSpec(n_utts=2, snrs_db=[0.0], duration_s=0.6,
                                                                  corruptions=["none"]))
    rs = ReportSpec(bootstrap=50, n_examples=0, figure_formats=["png"], metrics=["si_sdr"])
    html = write_report(run, tmp_path / "rep0", rs, progress=False).read_text()
    assert "Speech prior or noise model?" not in html
    (run / RESULT_FILE).parent.mkdir(parents=True)
    _rows(1.5).to_csv(run / RESULT_FILE, index=False)
    index = write_report(run, tmp_path / "rep", rs, progress=False)
    html = index.read_text()
    assert "Speech prior or noise model?" in html and "oracle − NMF" in html
    assert (index.parent / "tables" / "noise_model_check.csv").exists()
    assert "Oracle-noise check" in (index.parent / "summary.md").read_text()
