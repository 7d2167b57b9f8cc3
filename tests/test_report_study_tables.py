"""The report tables the study needs: paired differences vs the references in the headline
conditions (mean [CI], Holm star) and the trained-model table read from the checkpoints' metadata."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark.report.models_table import COLUMNS, training_summary, training_table
from benchmark.report.tables import difference_table, headline_tests, precision_table
from test_stats_hierarchical import _two_system_table


def test_difference_table_reports_the_paired_mean_and_its_ci():
    df = _two_system_table(offset=0.5).assign(snr_db=0.0, corruption="none")
    t = headline_tests(df, "m", references=["model=a-vae"], n_boot=300)
    d = difference_table(t)
    assert list(d["system"]) == ["av-vae/concat"] and list(d["reference"]) == ["a-vae"]
    assert list(d.columns[2:]) == ["clean video, 0 dB", "all conditions"]
    cell = d["clean video, 0 dB"].iloc[0]
    row = t[(t["system"] == "av-vae/concat") & (t["tcolumn"] == "clean video, 0 dB")].iloc[0]
    assert cell == f"{row['mean_diff']:+.2f} [{row['diff_ci_low']:+.2f}, {row['diff_ci_high']:+.2f}]*"
    assert cell.startswith("+0.50")
    # the same tests give the same precision table as computing it afresh
    pd.testing.assert_frame_equal(precision_table(df, "m", references=["model=a-vae"], n_boot=300, tests=t),
                                  precision_table(df, "m", references=["model=a-vae"], n_boot=300))
    # no difference: no star, a CI around 0
    flat = _two_system_table(offset=0.0).assign(snr_db=0.0, corruption="none")
    d0 = difference_table(headline_tests(flat, "m", references=["model=a-vae"], n_boot=300))
    assert not d0["clean video, 0 dB"].iloc[0].endswith("*")
    assert difference_table(pd.DataFrame()).empty


def _write_ckpt(d, label, seed, is_bin, gain, stop="early stop (no val improvement in 10 epochs)"):
    d.mkdir(parents=True)
    meta = {"label": label, "epochs_run": 12, "best_epoch": 2, "stop_reason": stop, "best_val_is_per_bin": is_bin,
            "best_val_kl": 3.0, "best_val_loss": 100.0, "train_seconds": 120.0, "params": 1000,
            "training": {"seed": seed}}
    if gain is not None:
        meta["video_gain_nats_per_frame"] = gain
    (d / "config.json").write_text(json.dumps({"name": label.split("/")[0], "meta": meta}))


def test_training_table_reads_every_checkpoint(tmp_path):
    run = tmp_path / "run"
    for s, (isb, g) in enumerate([(0.30, 0.5), (0.32, 1.5)]):
        _write_ckpt(run / "models" / "av-vae__concat" / f"seed-{s}", "av-vae/concat", s, isb, g)
        _write_ckpt(run / "models" / "a-vae" / f"seed-{s}", "a-vae", s, 0.4 + s / 100, None, stop="60 epochs")
    (run / "models" / "broken").mkdir()
    (run / "models" / "broken" / "config.json").write_text("{not json")
    t = training_table(run, order=["a-vae", "av-vae/concat"])
    assert list(t.columns) == COLUMNS
    assert list(t["model"]) == ["a-vae", "a-vae", "av-vae/concat", "av-vae/concat"]
    assert list(t["train_seed"]) == [0, 1, 0, 1]
    assert np.isnan(t["video_gain_nats_per_frame"].iloc[0]) and t["minutes"].iloc[0] == pytest.approx(2.0)
    s = training_summary(t).set_index("model")
    assert s.loc["av-vae/concat", "video gain (nats/frame)"] == "+1.00 [+0.50, +1.50]"
    assert s.loc["av-vae/concat", "early-stopped"] == "2/2" and s.loc["a-vae", "early-stopped"] == "0/2"
    assert s.loc["a-vae", "video gain (nats/frame)"] == "–"
    assert training_table(tmp_path / "nothing").empty and training_summary(training_table(tmp_path / "nothing")).empty
    # a run folder that keeps another run's checkpoints (resumed with fewer models, or copied):
    # only the run's own model labels are listed
    assert set(training_table(run, labels=["a-vae"], probe_units=False)["model"]) == {"a-vae"}


def test_report_model_table_lists_the_runs_own_models(tmp_path):
    """run.json names the run's model entries; a checkpoint folder of another model (left by an
    earlier version of the run, or copied with its folder) is not in the report's model table."""
    from benchmark.report.api import run_model_labels
    from benchmark.report.runfolder import RunData

    def rd(info):
        return RunData(tmp_path, pd.DataFrame(), None, None, info, [])

    models = [{"name": "a-vae"}, {"name": "av-vae", "fusion": "constant", "id": "av-vae/video-off"},
              {"name": "av-vae", "fusion": "gated", "training": {"reliability_loss_weight": 1.0}}]
    assert run_model_labels(rd({"spec": {"models": models}})) == ["a-vae", "av-vae/video-off", "av-vae/gated+relsup"]
    assert run_model_labels(rd({})) is None and run_model_labels(rd({"spec": {"models": [{"nme": 1}]}})) is None


def test_report_shows_the_tables(tmp_path):
    from benchmark.report.api import write_report
    from benchmark.report.synthetic_run import FakeRunSpec, write_fake_run
    from benchmark.spec import ReportSpec

    run = write_fake_run(tmp_path / "runs" / "fake", FakeRunSpec(n_utts=2, snrs_db=[-5.0], duration_s=1.0,
                                                                  corruptions=["none"]))
    _write_ckpt(run / "models" / "av-vae__gated", "av-vae/gated", 0, 0.3, 0.25)
    from benchmark.corpus.infocheck import InfoCheckReport

    (run / "corpus").mkdir(exist_ok=True)
    (run / "corpus" / "infocheck.json").write_text(json.dumps(InfoCheckReport(
        n_train_speakers=3, viseme_accuracy=0.512, viseme_chance=0.16, viseme_top3_accuracy=0.8, viseme_n_classes=9,
        activity_accuracy=0.9, activity_chance=0.6).to_dict()))
    index = write_report(run, tmp_path / "rep", ReportSpec(bootstrap=50, n_examples=0, figure_formats=["png"],
                                                           metrics=["si_sdr"]), progress=False)
    html = index.read_text()
    assert "Trained models" in html and "Gains over the references" in html and "+0.25" in html
    tables = index.parent / "tables"
    assert (tables / "models.csv").exists() and (tables / "headline_differences.md").exists()
    summary = (index.parent / "summary.md").read_text()
    assert "Paired differences" in summary and "accuracy 0.512 (chance 0.160)" in summary
    assert "What the lips alone tell" in html and "accuracy 0.512" in html


def test_visual_units_constant_finds_dead_front_end_units(tmp_path):
    """A live front-end has (almost) no constant unit; one whose output ReLUs are pushed below 0
    on every frame reads 100 %; the A-VAE has no front-end (NaN)."""
    import torch

    from benchmark.report.models_table import visual_units_constant
    from models.checkpoint import save
    from models.vae import AVAE, AVVAE

    torch.manual_seed(0)
    lips = [np.random.default_rng(i).integers(0, 255, (30, 16, 16), dtype=np.uint8) for i in range(3)]
    av = AVVAE(fusion="concat", lip_size=16)
    live = visual_units_constant(save(av, tmp_path / "live").parent, lips)
    assert 0.0 <= live < 0.5
    with torch.no_grad():
        av.frontend.net[-2].bias.fill_(-1e4)  # the output layer before the final ReLU
    assert visual_units_constant(save(av, tmp_path / "dead").parent, lips) == 1.0
    assert np.isnan(visual_units_constant(save(AVAE(), tmp_path / "a").parent, lips))
    assert np.isnan(visual_units_constant(tmp_path / "live", []))
