"""The shipped presets are valid (every name they use is registered), the weight summaries
follow their definition, ``--limit`` caps the test utterances, and ``status`` reports counts."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.spec import load_spec, preset_names

SHIPPED = ["smoke", "paper-table", "paper-table-wide", "visual-stress", "ablation", "full", "study", "study-power", "study-converged"]


def test_all_presets_shipped():
    assert set(SHIPPED) <= set(preset_names())


@pytest.mark.parametrize("name", SHIPPED)
def test_preset_names_are_registered(name):
    from benchmark.conditions.build import expand_conditions
    from benchmark.conditions.corruptions import parse_corruption
    from models.enhancement.registry import ALGORITHMS
    from models.registry import FRONTENDS, FUSIONS, MODELS

    spec = load_spec(name)
    conds = expand_conditions(spec.conditions)  # also checks the noise names
    from benchmark.conditions.subsets import excluded

    cs = spec.conditions
    assert len(conds) == sum(not excluded(cs.exclude, n, s, c) for n in cs.noises for s in cs.snrs_db for c in cs.corruptions)
    for c in spec.conditions.corruptions:
        parse_corruption(c)
    labels = [m.label for m in spec.models]
    assert len(labels) == len(set(labels)), f"{name}: duplicate model labels"
    for m in spec.models:
        MODELS.get(m.name)
        if m.fusion:
            FUSIONS.get(m.fusion)
        if "frontend" in m.params:
            FRONTENDS.get(m.params["frontend"])
    for a in spec.enhance.algorithms + spec.enhance.baselines:
        ALGORITHMS.get(a)


def test_paper_table_protocol():
    spec = load_spec("paper-table")
    assert spec.conditions.noises == ["LR", "White", "Cafe", "Car", "Babble", "Street"]
    assert spec.conditions.snrs_db == [-10.0, -5.0, 0.0, 5.0, 10.0]
    assert load_spec("paper-table-wide").conditions.snrs_db == [-5.0, 0.0, 5.0, 10.0, 15.0]
    assert set(spec.enhance.algorithms) == {"mcem", "vem", "ldem"}
    from models.registry import FUSIONS

    # every competing fusion; the diagnostics' controls (oracle, constant weight) are not competitors
    competitors = {n for n in FUSIONS.names() if not getattr(FUSIONS.get(n), "control", None)}
    assert {m.fusion for m in spec.models if m.fusion} == competitors
    vs = load_spec("visual-stress")
    from benchmark.conditions.corruptions import CORRUPTIONS

    kinds = {c.split("@")[0] for c in vs.conditions.corruptions if c != "none"}
    assert kinds == set(CORRUPTIONS.names())


def test_limit_caps_test_utterances():
    from benchmark.runner.pipeline import effective_spec

    spec = load_spec("paper-table", ["runner.limit=3"])
    assert effective_spec(spec).conditions.n_utterances == 3
    spec = load_spec("smoke", ["runner.limit=30"])
    assert effective_spec(spec).conditions.n_utterances == 4  # never more than the preset asks


def _npz(tmp_path, **arrays):
    p = tmp_path / "t.npz"
    np.savez(p, **arrays)
    return p


def test_weight_summaries(tmp_path):
    from benchmark.runner.stages import weight_summaries

    corr = np.array([0, 0, 0, 1, 1, 0.5], np.float32)
    vis = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.75])
    w = np.stack([1 - vis, vis], 1)
    s = weight_summaries(_npz(tmp_path, weights_decoder=w, weights_encoder=1 - w, corruption_stft=corr))
    assert s["visual_weight_mean"] == pytest.approx(vis.mean())  # decoder-side weights preferred
    assert s["visual_weight_mean_clean_frames"] == pytest.approx(0.8)
    assert s["visual_weight_mean_corrupted_frames"] == pytest.approx(np.mean([0.1, 0.2, 0.75]))
    # AUC of the visual weight for clean (positive) vs corrupted frames: 8 of 9 pairs ordered, 0.7 < 0.75
    assert s["visual_weight_auc"] == pytest.approx(8 / 9)
    s = weight_summaries(_npz(tmp_path, weights_encoder=w, corruption_stft=corr))
    assert s["visual_weight_mean"] == pytest.approx(vis.mean())  # encoder-only models
    s = weight_summaries(_npz(tmp_path, weights_decoder=w, corruption_stft=np.zeros(6, np.float32)))
    assert np.isnan(s["visual_weight_auc"]) and np.isnan(s["visual_weight_mean_corrupted_frames"])
    s = weight_summaries(_npz(tmp_path, cost=np.ones(3)))  # no weights (concat, a-vae)
    assert all(np.isnan(v) for v in s.values())
    assert all(np.isnan(v) for v in weight_summaries(None).values())


def test_status_counts_and_eta(tmp_path):
    from benchmark.runner.executors import SerialExecutor
    from benchmark.runner.jobs import Job, run_jobs
    from benchmark.runner.status import format_status, run_status
    from benchmark.runner.store import RunStore

    def fn(x, fail=False):
        if fail:
            raise RuntimeError("boom")
        return [{"x": x}]

    jobs = [Job("mix", {"x": i}, fn, {"x": i, "fail": i == 2}) for i in range(4)]
    RunStore(tmp_path).write_plan("mix", [j.key for j in jobs] + ["mix-pending1", "mix-pending2"])
    run_jobs(jobs, tmp_path, SerialExecutor(), progress=False)
    st = run_status(tmp_path)
    mix = next(s for s in st["stages"] if s.stage == "mix")
    assert (mix.planned, mix.done, mix.failed, mix.pending) == (6, 3, 1, 2)
    assert mix.mean_job_s is not None and st["eta_partial"]  # later stages not planned yet
    text = format_status(st)
    assert "mix" in text and "ETA" in text and "--retry-failed" in text


def test_composites_run_only_the_algorithms_they_define(tmp_path):
    """paper-table pairs every model with MCEM/VEM/LDEM; the mixture/switching VAEs define switching
    E-steps for MCEM and LDEM only (their class's ``algorithms``), so (composite, vem) is not
    planned (instead of failing); a composite whose component failed to train gets failure rows."""
    import pandas as pd

    from benchmark.runner.stages.enhance import systems
    from benchmark.spec import load_spec
    from models.enhancement.switching import SWITCH_ESTEPS
    from models.mixture import MixtureVAE, SwitchingVAE

    assert set(MixtureVAE.algorithms) == set(SwitchingVAE.algorithms) == set(SWITCH_ESTEPS.names())
    spec = load_spec("paper-table")
    assert "vem" in spec.enhance.algorithms
    table = pd.DataFrame([{"label": e.label, "key": f"k-{e.label}", "checkpoint": "x", "status": "ok", "error": ""}
                          for e in spec.models if e.name in ("a-vae", "av-vae", "av-cvae")])
    planned = {(s.get("model_id"), alg): kw for s, alg, kw in systems(spec, table)}
    for name in ("mixture-vae", "switching-vae"):
        assert (name, "mcem") in planned and (name, "ldem") in planned
        assert (name, "vem") not in planned
        assert set(planned[(name, "mcem")]["components"]) == {"a-vae", "av-vae/concat"}
    assert ("av-vae/concat", "vem") in planned
    failed = table.assign(status=table["status"].where(table["label"] != "av-vae/concat", "failed"))
    planned = {(s.get("model_id"), alg): kw for s, alg, kw in systems(spec, failed)}
    assert "av-vae/concat" in planned[("mixture-vae", "mcem")]["blocked"]
    assert planned[("av-vae/concat", "ldem")]["blocked"].startswith("train: training of av-vae/concat failed")


def test_model_classes_declare_what_the_train_stage_reads():
    """No runner rule names a model: the A-VAE trains first, AV models start from it
    (``init_from``), composites are not trained (``needs_training``) and name their components."""
    from benchmark.runner.stages.train import init_source, needs_training
    from benchmark.spec import load_spec

    spec = load_spec("paper-table")
    by = {e.name: e for e in spec.models}
    assert init_source(by["a-vae"]) is None and needs_training(by["a-vae"])
    assert init_source(by["av-vae"]) == "a-vae" and needs_training(by["av-vae"])
    assert init_source(by["av-cvae"]) == "a-vae"
    assert not needs_training(by["mixture-vae"]) and not needs_training(by["switching-vae"])


def test_upstream_failures_become_the_enhance_stages_failure_rows(tmp_path):
    """No shared blocked dict: the enhance stage turns a failed mixing item (every system) and a
    failed training (every item of that model) into its own failed rows with the upstream reason,
    and plans jobs only for what can run."""
    import pandas as pd

    from benchmark.runner.context import StageContext
    from benchmark.runner.pipeline import RunOptions
    from benchmark.runner.stages import enhance
    from benchmark.runner.store import RunStore
    from benchmark.spec import load_spec

    spec = load_spec("smoke", ["models=[{name: a-vae}, {name: av-vae, fusion: gated}]", "enhance.algorithms=[ldem]",
                               "enhance.baselines=[noisy]"])
    ctx = StageContext(spec, tmp_path, RunOptions(), RunStore(tmp_path))
    item = dict(utt_id="u", speaker="s", condition_id="white_0", noise="white", snr_db=0.0, snr_definition="energy",
                corruption="none", severity=float("nan"), seed=0, mixture_path="m.wav", clean_path="c.wav", fps=25.0)
    mix = pd.DataFrame([dict(item, item_id="ok-item", mix_id="m1", status="ok", error=""),
                        dict(item, utt_id="v", item_id="bad-item", mix_id="m2", status="failed", error="mix: boom")])
    train = pd.DataFrame([{"label": "a-vae", "key": "k1", "checkpoint": "/x.pt", "status": "ok", "error": ""},
                          {"label": "av-vae/gated", "key": "k2", "checkpoint": "", "status": "failed",
                           "error": "train: training of av-vae/gated failed: RuntimeError: nan loss"}])
    up = {"mix": mix, "train": train}
    jobs = enhance.plan(ctx, up)
    assert sorted((j.system["model_id"], [i["item_id"] for i in j.items]) for j in jobs) == [
        ("", ["ok-item"]), ("a-vae", ["ok-item"])]
    rows = enhance.upstream_failures(ctx, up).set_index(["item_id", "model_id"])
    assert sorted(rows.index) == [("bad-item", ""), ("bad-item", "a-vae"), ("bad-item", "av-vae/gated"),
                                  ("ok-item", "av-vae/gated")]
    assert (rows["status"] == "failed").all()
    assert rows.loc[("bad-item", "a-vae"), "error"] == "mix: boom"
    assert rows.loc[("ok-item", "av-vae/gated"), "error"].endswith("RuntimeError: nan loss")
    assert rows.loc[("ok-item", "av-vae/gated"), "snr_db"] == 0.0  # the item's identity columns


def test_study_power_preset_extends_the_study_on_its_headline():
    """study-power: six seeds and eight utterances on the study's headline cell, for the systems of
    the headline. Its corpus, training settings and model entries equal the study's, so the jobs
    of the study's first 3 seeds x 4 utterances are exactly the study's (a copy of a finished study
    run resumes it), and it compares everything with the budget-matched video-off control."""
    from benchmark.configtools import to_dict

    power, study = load_spec("study-power"), load_spec("study")
    assert to_dict(power.corpus) == to_dict(study.corpus)
    pt, st = to_dict(power.training), to_dict(study.training)
    assert {k: v for k, v in pt.items() if k != "seeds"} == {k: v for k, v in st.items() if k != "seeds"}
    assert power.training.seed_list[:3] == study.training.seed_list and len(power.training.seed_list) >= 6
    assert power.conditions.n_utterances >= 2 * study.conditions.n_utterances
    assert power.conditions.snrs_db == [-5.0] and power.conditions.corruptions == ["none"]
    assert set(power.conditions.noises) == set(study.conditions.noises)
    assert (power.seed, power.conditions.split) == (study.seed, study.conditions.split)
    by_label = {m.label: to_dict(m) for m in study.models}
    for m in power.models:
        assert to_dict(m) == by_label[m.label], m.label  # same entry: same training key per seed
    labels = {m.label for m in power.models}
    assert {"a-vae", "av-vae/video-off", "av-vae/concat", "av-cvae/concat"} <= labels
    assert "model_id=av-vae/video-off" in power.report.references
    assert power.enhance.algorithms == study.enhance.algorithms and not power.enhance.algorithm_params
    assert to_dict(power.metrics) == to_dict(study.metrics)


def test_study_preset_answers_the_question():
    """The study preset (issue 18): a corpus several times smoke's, three training seeds, a bursty
    corruption beside clean video, the attention fusions plain and with reliability training, both
    controls and both composites."""
    from benchmark.spec import RELSUP_SUFFIX

    spec, smoke = load_spec("study"), load_spec("smoke")
    c, s = spec.corpus, smoke.corpus
    assert c.n_train_speakers >= 32 and c.n_test_speakers >= 8 and c.n_babble_speakers > 0
    assert c.n_train_speakers * c.utts_per_speaker >= 3 * s.n_train_speakers * s.utts_per_speaker
    assert spec.training.seed_list == [0, 1, 2]
    assert "none" in spec.conditions.corruptions and any(k.startswith("bursty") for k in spec.conditions.corruptions)
    assert set(spec.conditions.noises) == {"white", "babble", "cafe", "street", "speech-shaped"}
    labels = {m.label for m in spec.models}
    for fusion in ("modality-attention", "cross-attention"):
        assert {f"av-vae/{fusion}", f"av-vae/{fusion}{RELSUP_SUFFIX}"} <= labels
    assert {"a-vae", "av-vae/concat", "av-cvae/concat", "av-vae/oracle-reliability", "av-vae/constant",
            "mixture-vae", "switching-vae"} <= labels
    assert spec.enhance.algorithms == ["ldem", "mcem"] and not spec.enhance.algorithm_params  # published settings
    # MCEM on the headline cell (-5 dB, clean video), for the published systems only
    assert spec.enhance.subsets["mcem"] == {"snrs_db": [-5.0], "corruptions": ["none"]}
    mcem = {m for m in labels if "mcem" in spec.enhance.subsets.get(m, {}).get("algorithms", ["mcem"])}
    assert mcem == {"a-vae", "av-vae/concat", "av-cvae/concat", "av-vae/video-off"}
    # the budget-matched audio-only control: the AV-VAE's training with the video path closed by
    # construction (constant visual weight 0: it starts as the A-VAE and trains as long as concat)
    by_label = {m.label: m for m in spec.models}
    off, concat = by_label["av-vae/video-off"], by_label["av-vae/concat"]
    assert off.fusion == "constant" and off.params["fusion_params"]["visual_weight"] == 0.0
    assert off.training == concat.training and spec.training.init_from_avae
    assert {"noisy", "oracle-wiener", "nmf-only"} <= set(spec.enhance.baselines)


def test_study_converged_preset_trains_the_headline_to_early_stopping():
    """study-converged: the study's corpus and headline systems (A-VAE, the budget-matched video-off
    control, concat: the same entries apart from the epoch cap), trained until early stopping --
    the caps sit far above the measured stopping epochs (A-VAE 129, AV 45 at batch_size 8) -- with
    three seeds, and the video-off control trained exactly like concat."""
    from benchmark.configtools import to_dict

    conv, study = load_spec("study-converged"), load_spec("study")
    assert to_dict(conv.corpus) == to_dict(study.corpus)
    assert conv.training.seed_list == [0, 1, 2] and conv.training.patience > 0
    assert conv.training.epochs >= 3 * 129 and conv.training.lr == study.training.lr
    by_label = {m.label: m for m in conv.models}
    assert set(by_label) == {"a-vae", "av-vae/video-off", "av-vae/concat"}
    off, concat = by_label["av-vae/video-off"], by_label["av-vae/concat"]
    assert off.training == concat.training and concat.training["epochs"] >= 3 * 45
    study_by_label = {m.label: m for m in study.models}
    for label, m in by_label.items():  # the study's entries, with the cap lifted
        assert {k: v for k, v in to_dict(m).items() if k != "training"} == \
            {k: v for k, v in to_dict(study_by_label[label]).items() if k != "training"}, label
    assert conv.conditions.corruptions == ["none"] and -5.0 in conv.conditions.snrs_db
    assert conv.conditions.n_utterances >= 2 * study.conditions.n_utterances
    assert conv.enhance.algorithms == ["ldem", "mcem"] and not conv.enhance.algorithm_params
    assert conv.report.references == ["model=a-vae", "model_id=av-vae/video-off", "model_id=av-vae/concat"]
