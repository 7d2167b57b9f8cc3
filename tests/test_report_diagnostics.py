"""Reliability-weight diagnostics and paper tables on synthetic data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.configtools import ConfigError
from benchmark.report import diagnostics as diag
from benchmark.report.reference import comparison_tables, load_reference
from benchmark.report.tables import paper_table
from benchmark.report.style import add_system_column, report_palette, system_order

EXAMPLE_YAML = __import__("pathlib").Path(__file__).parents[1] / "benchmark" / "report" / "reference_example.yaml"


def test_roc_auc_of_perfectly_separating_weight_is_one():
    corrupted = np.array([0, 0, 1, 1, 1, 0, 1], dtype=bool)
    w = np.where(corrupted, 0.1, 0.9) + np.linspace(0, 0.05, 7)
    assert diag.roc_auc(w, corrupted) == 1.0
    assert diag.roc_auc(1 - w, corrupted) == 0.0
    assert diag.roc_auc(np.full(7, 0.5), corrupted) == 0.5
    assert np.isnan(diag.roc_auc(w, np.zeros(7, bool)))  # one class only


def test_visual_weight_prefers_decoder_and_handles_missing():
    tr = {"weights_encoder": np.array([[0.7, 0.3]] * 3), "weights_decoder": np.array([[0.2, 0.8]] * 3)}
    assert diag.visual_weight(tr).tolist() == [0.8] * 3
    assert diag.visual_weight(tr, "encoder").tolist() == [0.3] * 3
    assert diag.visual_weight({"weights_encoder": tr["weights_encoder"]}).tolist() == [0.3] * 3
    assert diag.visual_weight({"cost": np.ones(3)}) is None


def _write_traces(tmp_path, systems):
    rows = []
    rng = np.random.default_rng(0)
    for s, kind in systems.items():
        for u in range(4):
            for snr in (-5.0, 5.0):
                for corr in ("none", "occlusion"):
                    level = np.zeros(50)
                    if corr != "none":
                        level[10:30] = 1.0
                    p = tmp_path / f"{s}_{u}_{snr}_{corr}.npz"
                    arrays = {"corruption_stft": level, "cost": np.ones(3), "frame_rate": 62.5}
                    if kind == "tracks":
                        w = np.clip(0.6 - 0.02 * snr - 0.4 * level + rng.normal(0, 0.02, 50), 0, 1)
                        arrays["weights_decoder"] = np.stack([1 - w, w], 1)
                    elif kind == "blind":
                        w = rng.uniform(0, 1, 50)
                        arrays["weights_decoder"] = np.stack([1 - w, w], 1)
                    elif kind == "constant":
                        arrays["weights_decoder"] = np.full((50, 2), 0.5)
                    np.savez(p, **arrays)
                    gain = 5 - (2.0 if (corr != "none" and kind == "none") else 0.2 if corr != "none" else 0)
                    rows.append({"utt_id": f"u{u}", "condition_id": f"{snr}_{corr}", "item_id": f"{snr}_{corr}/u{u}",
                                 "noise": "white", "snr_db": snr, "corruption": corr, "severity": 1.0 if corr != "none" else 0.0,
                                 "model_id": s, "model": s, "fusion": s, "algorithm": "ldem", "traces_path": p.name,
                                 "delta_si_sdr": gain + rng.normal(0, 0.05)})
    return add_system_column(pd.DataFrame(rows))


def test_reliability_table_tracks_weights_without_special_cases(tmp_path):
    df = _write_traces(tmp_path, {"tracker": "tracks", "blindfold": "blind", "concatish": "none"})
    frames = diag.frame_table(df, tmp_path)
    assert set(frames["system"]) == {"tracker", "blindfold"}  # the system without weights has no frames
    rel = diag.reliability_table(df, frames, n_boot=200).set_index("system")
    assert list(rel.columns[:4]) == ["control", "weights", "auc_paired", "auc_paired_ci_low"]  # the headline first
    assert rel.loc["tracker", "auc_within"] == pytest.approx(1.0)
    assert rel.loc["tracker", "auc_paired"] == pytest.approx(1.0)
    assert rel.loc["tracker", "weight_drop_paired"] == pytest.approx(0.4, abs=0.02)  # 0.4 * level by construction
    assert rel.loc["tracker", "n_pairs_paired"] == 8  # 4 utterances x 2 SNRs
    assert 0.3 < rel.loc["blindfold", "auc_within"] < 0.7
    assert 0.3 < rel.loc["blindfold", "auc_paired"] < 0.7
    assert rel.loc["tracker", "corr_snr"] < -0.8  # more visual trust at low SNR
    assert np.isnan(rel.loc["concatish", "auc_within"]) and np.isnan(rel.loc["concatish", "auc_paired"])
    assert rel.loc["concatish", "si_sdr_drop"] == pytest.approx(2.0, abs=0.1)
    assert rel.loc["tracker", "si_sdr_drop"] == pytest.approx(0.2, abs=0.1)
    # without traces the per-row summaries of the results table are used
    df2 = df.drop(columns=["traces_path"]).assign(visual_weight_mean=np.where(df["system"] == "tracker", 0.5, np.nan),
                                                 visual_weight_auc=np.where(df["system"] == "tracker", 0.9, np.nan))
    rel2 = diag.reliability_table(df2, diag.frame_table(df2, tmp_path), n_boot=50).set_index("system")
    assert rel2.loc["tracker", "auc_within"] == pytest.approx(0.9)
    assert np.isnan(rel2.loc["tracker", "auc_paired"])  # the paired AUC needs the traces


def test_significance_markers_stay_distinct_beyond_five_references():
    """Three reference models x two algorithms are six reference systems (the study preset); each
    gets its own marker, in the table notes and in LaTeX (the first version cycled through five
    symbols, so the sixth reference reused the first one's)."""
    from benchmark.report.tables import MARKERS, latex_markers, marker

    marks = [marker(i) for i in range(len(MARKERS) + 3)]
    assert len(set(marks)) == len(marks) and marks[len(MARKERS)] == f"({len(MARKERS) + 1})"
    rng = np.random.default_rng(2)
    refs = [f"ref{i}" for i in range(7)]
    rows = [{"utt_id": f"u{u}", "condition_id": "c0", "snr_db": 0.0, "model_id": m, "fusion": None, "model": m,
             "algorithm": "ldem", "si_sdr": rng.normal(0, 1) + (3.0 if m == "best" else 0.0), "status": "ok"}
            for u in range(12) for m in refs + ["best"]]
    df = add_system_column(pd.DataFrame(rows))
    t = paper_table(df, "si_sdr", systems=system_order(df), references=[f"model_id={r}" for r in refs], n_boot=50)
    best = next(s for s in t.markers.index if s.startswith("best"))
    assert all(set(m) == set("".join(marks[:7])) for m in t.markers.loc[best])
    notes = t.to_markdown()
    for i in range(7):
        assert f"{marks[i]}: significantly better than" in notes
    tex = t.to_latex()
    assert r"\Vert" in tex and r"\sharp" in tex and latex_markers("†(12)") == r"\dagger(12)"


def test_paper_table_bold_markers_and_formats():
    rng = np.random.default_rng(1)
    rows = []
    for u in range(12):
        for snr in (-5.0, 0.0, 5.0):
            b = rng.normal(snr, 1)
            for mid, fu, algo, d in (("a-vae", None, "ldem", 0), ("av-vae/concat", "concat", "ldem", 0.3),
                                     ("av-vae/gated", "gated", "ldem", 1.5), ("", None, "oracle", 9.0)):
                rows.append({"utt_id": f"u{u}", "condition_id": f"c{snr}", "snr_db": snr, "model_id": mid, "fusion": fu,
                             "model": mid.split("/")[0], "algorithm": algo, "si_sdr": b + d + rng.normal(0, 0.1),
                             "status": "ok"})
    df = add_system_column(pd.DataFrame(rows))
    order = system_order(df)
    assert order[0] == "oracle"  # baselines (no model) first
    t = paper_table(df, "si_sdr", systems=order, n_boot=200)
    assert t.columns == ["-5 dB", "0 dB", "5 dB", "Avg."]
    assert t.best.loc["av-vae/gated"].all() and not t.best.loc["oracle"].any()  # the oracle is not ranked
    assert all("†" in m and "‡" in m for m in t.markers.loc["av-vae/gated"])
    assert all(m == "" for m in t.markers.loc["a-vae"])
    md, tex = t.to_markdown(), t.to_latex()
    assert "**" in md and "| av-vae/gated |" in md
    assert r"\toprule" in tex and r"\textbf{" in tex and r"\dagger" in tex
    long = pd.read_csv(__import__("io").StringIO(t.to_csv()))
    assert {"system", "column", "mean", "ci_low", "ci_high", "n", "n_nan", "n_failed"} <= set(long.columns)
    pal = report_palette(df)
    assert len(set(pal.values())) == len(pal)


def test_reference_yaml_example_and_errors(tmp_path):
    ref = load_reference(EXAMPLE_YAML)
    assert ref["format_example"] is True
    assert all(v is None for t in ref["tables"] for e in t["entries"] for v in e["values"].values())
    df = pd.DataFrame({"model_id": ["a-vae"] * 2, "snr_db": [-5.0, 5.0], "si_sdr": [1.0, 3.0]})
    (title, tab, note), *_ = comparison_tables(ref, df, corpus_name="synthetic", synthetic=True)
    assert "DIFFERENT DATA" in note and "FORMAT EXAMPLE" in note
    ours = tab[tab["row"].str.startswith("ours: model_id=a-vae")].iloc[0]
    assert ours["-5 dB"] == 1.0 and ours["5 dB"] == 3.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("tables:\n  - source: x\n    metric: si_sdr\n    entries:\n      - label: A\n        values: {0: high}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*values\[0\]"):
        load_reference(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_reference(tmp_path / "missing.yaml")


def test_roc_auc_handles_ties_like_the_rank_formula():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(3)
    w = rng.integers(0, 4, 60) / 3.0  # many ties, within and across classes
    corrupted = rng.random(60) < 0.4
    u = mannwhitneyu(w[~corrupted], w[corrupted]).statistic
    assert diag.roc_auc(w, corrupted) == pytest.approx(u / ((~corrupted).sum() * corrupted.sum()))
    assert diag.roc_auc(np.full(60, 0.3), corrupted) == 0.5  # all tied: exactly 0.5


def test_negative_controls_read_right(tmp_path):
    """A constant weight reads AUC 0.5 exactly; a system without weights reads "no weights"
    (NaN AUC with its reason), also when it has no clean/corrupted pairs for a drop row."""
    df = _write_traces(tmp_path, {"const": "constant", "nofuse": "none", "tracker": "tracks"})
    df.loc[df["system"] == "const", "fusion"] = "constant"
    df.loc[df["system"] == "tracker", "fusion"] = "oracle-reliability"
    rel = diag.reliability_table(df, diag.frame_table(df, tmp_path), n_boot=50).set_index("system")
    assert rel.loc["const", "auc_within"] == 0.5 and rel.loc["const", "auc_within_pooled"] == 0.5
    assert rel.loc["const", "auc_paired"] == 0.5 and rel.loc["const", "weight_drop_paired"] == 0.0
    assert rel.loc["const", "weights"] == "decoder"
    assert rel.loc["nofuse", "weights"] == "no weights" and np.isnan(rel.loc["nofuse", "auc_within"])
    assert np.isnan(rel.loc["nofuse", "auc_paired"])
    assert rel.loc["const", "control"].startswith("negative control")
    assert rel.loc["tracker", "control"].startswith("positive control")
    assert rel.loc["nofuse", "control"] == ""
    only_clean = df[(df["system"] == "nofuse") & (df["corruption"] == "none")]
    rel2 = diag.reliability_table(only_clean, diag.frame_table(only_clean, tmp_path), n_boot=20)
    assert rel2["weights"].tolist() == ["no weights"]


def test_runner_row_summaries_are_the_report_numbers(tmp_path):
    """One AUC: the runner's per-row weight summaries equal the report's per-item ones."""
    from benchmark.runner.stages import weight_summaries
    from benchmark.schema import WEIGHT_COLUMNS

    df = _write_traces(tmp_path, {"tracker": "tracks", "blindfold": "blind", "const": "constant"})
    items = diag.item_weights(diag.frame_table(df, tmp_path)).set_index("item_id")
    for r in df.itertuples(index=False):
        row = weight_summaries(tmp_path / r.traces_path)
        ref = items[items["system"] == r.system].loc[r.item_id]
        for c in WEIGHT_COLUMNS:
            assert row[c] == pytest.approx(ref[c], nan_ok=True), (r.system, r.item_id, c)
    assert all(np.isnan(v) for v in weight_summaries(tmp_path / "missing.npz").values())


def test_controls_are_not_ranked_in_paper_tables():
    rng = np.random.default_rng(2)
    rows = []
    for u in range(6):
        for mid, fu, d in (("av-vae/gated", "gated", 1.0), ("av-vae/oracle-reliability", "oracle-reliability", 3.0)):
            rows.append({"utt_id": f"u{u}", "condition_id": "c0", "snr_db": 0.0, "model_id": mid, "fusion": fu,
                         "model": "av-vae", "algorithm": "ldem", "si_sdr": d + rng.normal(0, 0.1), "status": "ok"})
    df = add_system_column(pd.DataFrame(rows))
    t = paper_table(df, "si_sdr", systems=system_order(df), n_boot=50)
    assert t.best.loc["av-vae/gated"].all() and not t.best.loc["av-vae/oracle-reliability"].any()


def _frames(weights: dict, level: np.ndarray, *, seed=np.nan) -> pd.DataFrame:
    """A :func:`diag.frame_table` by hand: one item per (corruption, weight trace); the clean item
    has level 0, every corrupted one ``level``."""
    parts = []
    for (corr, sev), w in weights.items():
        lev = np.zeros(len(w)) if corr == "none" else level[: len(w)]
        parts.append(pd.DataFrame({"system": "m", "item_id": f"{corr}{sev}/u0", "utt_id": "u0", "noise": "white",
                                   "snr_db": 0.0, "corruption": corr, "severity": sev, "train_seed": seed,
                                   "condition_id": f"{corr}{sev}", "frame": np.arange(len(w)), "visual_weight": w,
                                   "corruption_level": lev, "corrupted": lev > 0}))
    return pd.concat(parts, ignore_index=True)


def test_paired_auc_is_free_of_frame_content_the_within_auc_is_not():
    """A weight that depends on the frame's content only (the same in both runs, as common random
    numbers make it) and falls on the corrupted frames by chance: the within-utterance AUC reads
    1, the paired AUC 0.5 exactly and the paired drop 0. A weight that drops by 0.05 on every
    corrupted frame under large content swings: the within AUC is blind-ish, the paired drop 0.05."""
    T = 40
    level = np.zeros(T)
    level[10:20] = 0.7
    content = np.where(level > 0, 0.2, 0.8) + np.linspace(0, 0.01, T)  # low on the burst frames anyway
    fr = _frames({("none", 0.0): content, ("occlusion", 0.7): content.copy()}, level)
    pairs = diag.paired_weights(fr)
    assert len(pairs) == 1 and pairs.loc[0, "n_frames"] == 10
    assert pairs.loc[0, "auc_paired"] == 0.5 and pairs.loc[0, "weight_drop"] == 0.0
    assert diag.item_weights(fr).set_index("corruption").loc["occlusion", "visual_weight_auc"] == 1.0

    swing = np.random.default_rng(0).uniform(0, 1, T)
    fr2 = _frames({("none", 0.0): swing, ("occlusion", 0.7): swing - 0.05 * (level > 0)}, level)
    p2 = diag.paired_weights(fr2)
    assert p2.loc[0, "weight_drop"] == pytest.approx(0.05)
    assert 0.5 < p2.loc[0, "auc_paired"] < 0.7  # every frame drops, but the rank AUC compares across frames
    assert abs(diag.item_weights(fr2).set_index("corruption").loc["occlusion", "visual_weight_auc"] - 0.5) < 0.25


def test_paired_weights_pairs_on_mixture_and_seed_and_breaks_down_by_kind():
    """Pairs only within the same system, utterance, noise, SNR and training seed; traces of
    different lengths are cut; an item without a clean partner or without corrupted frames gives
    no pair; the breakdown per kind and severity and the oracle (weight = 1 - level) reads 1."""
    T = 30
    level = np.zeros(T)
    level[5:15] = 1.0
    parts = []
    for s in (0, 1):
        ones = np.ones(T)
        parts.append(_frames({("none", 0.0): ones, ("frame-drop", 1.0): 1 - level,
                              ("occlusion", 0.5): (1 - 0.5 * level)[: T - 3]}, level, seed=float(s)))
        parts[-1].loc[parts[-1]["corruption"] == "occlusion", "corruption_level"] *= 0.5
    fr = pd.concat(parts, ignore_index=True)
    # a seed-2 corrupted item with no clean partner, and a corrupted item with no corrupted frame
    orphan = _frames({("blur", 1.0): np.zeros(T)}, level, seed=2.0)
    nocorr = _frames({("noise", 0.3): np.zeros(T)}, np.zeros(T), seed=0.0)
    pairs = diag.paired_weights(pd.concat([fr, orphan, nocorr], ignore_index=True))
    assert len(pairs) == 4 and set(pairs["corruption"]) == {"frame-drop", "occlusion"}
    assert set(pairs["train_seed"]) == {0.0, 1.0}
    assert (pairs["auc_paired"] == 1.0).all() and (pairs["n_frames"] == 10).all()
    by = diag.paired_summary(pairs, n_boot=50).set_index(["corruption", "severity"])
    assert by.loc[("frame-drop", 1.0), "weight_drop_paired"] == pytest.approx(1.0)
    assert by.loc[("occlusion", 0.5), "weight_drop_paired"] == pytest.approx(0.5)
    assert (by["n_pairs"] == 2).all() and (by["auc_paired"] == 1.0).all()
    # a clean partner must not come from another seed: seed 1 without its clean item loses its pairs
    fr_no1 = fr[~((fr["train_seed"] == 1.0) & (fr["corruption"] == "none"))]
    assert set(diag.paired_weights(fr_no1)["train_seed"]) == {0.0}
    assert diag.paired_weights(pd.DataFrame()).empty and diag.paired_summary(pd.DataFrame()).empty
