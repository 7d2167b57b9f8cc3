"""Training seeds as a grid axis (``training.seeds``): one real reduced run with two seeds (two
checkpoints per model with different weights, AV models initialised from their own seed's
A-VAE, result rows carrying ``train_seed``, per-seed files, the report's seed-spread table), and
plan-level checks that need no training (a single-seed spec plans the keys it planned before the
seeds axis; composites pair components of the same seed; the EM seed moves with the seed; the
report helpers key per seed)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_pipeline_e2e import cli_run, reduced_preset

SEEDS = [0, 1]


# ---- one real run with two training seeds -------------------------------------------------------

@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory, tiny_corpus):
    pytest.importorskip("models.enhancement.api")
    tmp = tmp_path_factory.mktemp("seeds")
    preset = reduced_preset(
        tmp, tiny_corpus, training={"epochs": 2, "patience": 2, "seeds": list(SEEDS)},
        enhance={"algorithms": ["ldem"], "baselines": ["noisy"], "algorithm_params": {"ldem": {"n_iter": 3}}},
        conditions={"n_utterances": 2, "noises": ["white"], "snrs_db": [0.0], "corruptions": ["none", "occlusion@0.7"]})
    run = tmp / "run"
    t0 = time.perf_counter()
    rc = cli_run(preset, run)
    print(f"\ntwo-seed reduced run: {time.perf_counter() - t0:.1f} s")
    return {"run": run, "rc": rc, "tmp": tmp, "preset": preset}


def _records(run: Path, stage: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run / "jobs" / stage).glob("*.json"))]


def test_two_seeds_two_checkpoints_with_different_weights(seeds_run):
    import models

    run = seeds_run["run"]
    assert seeds_run["rc"] == 0, (run / "failures.csv").read_text() if (run / "failures.csv").exists() else ""
    for label in ("a-vae", "av-vae__gated"):
        dirs = [run / "models" / label / f"seed-{s}" for s in SEEDS]
        ckpts = [sorted(d.glob("*.pt")) for d in dirs]
        assert all(ckpts), f"no checkpoint in {dirs}"
        m0, m1 = (models.load(str(c[0].parent)) for c in ckpts)
        p0 = dict(m0.named_parameters())
        p1 = dict(m1.named_parameters())
        assert p0.keys() == p1.keys()
        assert any(not np.allclose(p0[k].detach().numpy(), p1[k].detach().numpy()) for k in p0), label
    # the single-seed layout (models/<label>/checkpoint.pt) is not used with several seeds
    assert not list((run / "models" / "a-vae").glob("*.pt"))


def test_av_model_starts_from_the_avae_of_its_own_seed(seeds_run):
    recs = [r for r in _records(seeds_run["run"], "train") if "training" in r["inputs"]]
    avae = {r["inputs"]["training"]["seed"]: r["key"] for r in recs if r["inputs"]["entry"]["name"] == "a-vae"}
    av = {r["inputs"]["training"]["seed"]: r["inputs"]["init_from"] for r in recs
          if r["inputs"]["entry"]["name"] == "av-vae"}
    assert sorted(avae) == sorted(av) == SEEDS
    assert all(av[s] == avae[s] for s in SEEDS)
    assert avae[0] != avae[1]
    assert all("seeds" not in r["inputs"]["training"] for r in recs)


def test_rows_carry_train_seed_and_files_are_per_seed(seeds_run):
    run = seeds_run["run"]
    df = pd.read_parquet(run / "results.parquet")
    # 2 utterances x 2 conditions x (2 models x 2 seeds + 1 baseline)
    assert len(df) == 2 * 2 * (2 * 2 + 1)
    assert set(df["status"]) == {"ok"}
    trained = df[df["model_id"] != ""]
    assert sorted(trained["train_seed"].unique()) == SEEDS
    assert df.loc[df["model_id"] == "", "train_seed"].isna().all()
    # the seed is not part of model_id or the system
    assert set(trained["model_id"]) == {"a-vae", "av-vae/gated"}
    assert not df.duplicated(["item_id", "model_id", "algorithm", "train_seed"]).any()
    enh = pd.read_parquet(run / "enhanced.parquet")
    paths = enh.loc[enh["model_id"] != "", "enhanced_path"]
    seeds = enh.loc[enh["model_id"] != "", "train_seed"]
    assert paths.is_unique and all(f"/seed-{int(s)}/" in p for p, s in zip(paths, seeds))
    # two seeds of the same system give different outputs (different weights and EM streams)
    a = trained[trained["model_id"] == "a-vae"].pivot_table(index="item_id", columns="train_seed", values="si_sdr")
    assert not np.allclose(a[0], a[1])
    # run.json and status show the seeds
    assert json.loads((run / "run.json").read_text())["train_seeds"] == SEEDS
    from benchmark.runner.status import format_status, run_status

    st = run_status(run)
    assert st["train_seeds"] == SEEDS and "training seeds: 0, 1" in format_status(st)


def test_report_reads_each_seeds_files_and_shows_the_seed_spread(seeds_run):
    """The report's run loader attaches each seed's own traces, the diagnostics read them per
    seed, and the seed-spread table has both trained systems with both seeds."""
    from benchmark.report import diagnostics as diag
    from benchmark.report.runfolder import load_run
    from benchmark.report.tables import seed_spread_table

    run = seeds_run["run"]
    rd = load_run(run)
    gated = rd.results[rd.results["model_id"] == "av-vae/gated"]
    assert gated["traces_path"].notna().all() and gated["traces_path"].is_unique
    assert all(f"seed-{int(s)}" in p for p, s in zip(gated["traces_path"], gated["train_seed"]))
    frames = diag.frame_table(rd.results, run)
    assert sorted(frames["train_seed"].dropna().unique()) == SEEDS
    items = diag.item_weights(frames)
    assert len(items) == len(gated)  # one item per (utterance, condition, seed): no seed merged into another
    rel = diag.reliability_table(rd.results, frames, n_boot=200)
    assert int(rel.loc[rel["system"].str.startswith("av-vae/gated"), "n_items"].iloc[0]) == len(gated)
    spread = seed_spread_table(rd.results, "delta_si_sdr")
    assert len(spread) == 2 and spread["between_seed_sd"].notna().all()


@pytest.mark.slow
def test_full_report_writes_the_seed_spread_table(seeds_run):
    from benchmark.report.api import write_report

    out = seeds_run["tmp"] / "report"
    write_report(seeds_run["run"], out, progress=False)
    spread = pd.read_csv(out / "tables" / "seed_spread.csv")
    assert len(spread) == 2 and spread["between_seed_sd"].notna().all()
    assert "seed" in (out / "index.html").read_text().lower()


# ---- plan-level checks (no training) ------------------------------------------------------------

def _ctx(spec, run_dir: Path):
    from benchmark.runner.context import StageContext
    from benchmark.runner.pipeline import RunOptions, effective_spec
    from benchmark.runner.store import RunStore

    return StageContext(effective_spec(spec), run_dir, RunOptions(), RunStore(run_dir))


def _plan_keys(spec, run_dir: Path) -> dict[str, list[str]]:
    """The train (both waves) and enhancement plans' keys on fake upstream tables."""
    from benchmark.runner.stages import enhance, train

    ctx = _ctx(spec, run_dir)
    up = {"corpus": pd.DataFrame([{"corpus_id": "C", "root": "/x"}])}
    w1 = train.plan(ctx, up)

    def table(jobs):
        return pd.DataFrame([{"label": getattr(j, "model_label", "") or j.label,
                              "train_seed": j.train_seed if isinstance(j, train.TrainJob) else None,
                              "key": j.key, "checkpoint": f"/ck/{j.key}", "status": "ok", "error": ""} for j in jobs])

    w2 = train.plan(ctx, up, table(w1))
    jobs = w1 + [j for j in w2 if j.key not in {x.key for x in w1}]
    up["train"] = table(jobs)
    up["mix"] = pd.DataFrame([{"item_id": f"c/{u}", "mix_id": f"m{u}", "condition_id": "c", "utt_id": u, "noise": "white",
                               "snr_db": 0.0, "snr_definition": "energy", "seed": 0, "status": "ok", "fps": 25.0}
                              for u in ("u1", "u2")])
    enh = enhance.plan(ctx, up)
    return {"train": [j.key for j in jobs], "enhance": [j.key for j in enh], "train_jobs": jobs, "enhance_jobs": enh}


def test_single_seed_plans_the_keys_of_before(tmp_path):
    """A spec without ``seeds`` and the same spec with ``seeds: [seed]`` plan the same keys, and
    those jobs carry nothing of the seeds axis: the training dict is the spec's without ``seeds``
    (exactly what was keyed before), the EM seed is ``enhance.seed``, the files are where they were."""
    from benchmark.configtools import to_dict
    from benchmark.spec import load_spec

    spec = load_spec("smoke")
    a = _plan_keys(spec, tmp_path)
    spec1 = load_spec("smoke", [f"training.seeds=[{spec.training.seed}]"])
    b = _plan_keys(spec1, tmp_path)
    assert a["train"] == b["train"] and a["enhance"] == b["enhance"]
    before = {k: v for k, v in to_dict(spec.training).items() if k != "seeds"}
    assert all(j.training == before for j in a["train_jobs"] if hasattr(j, "training"))
    assert all(Path(j.out_dir).parent.name == "models" for j in a["train_jobs"] if hasattr(j, "out_dir"))
    assert {j.seed for j in a["enhance_jobs"]} == {spec.enhance.seed}
    assert all(j.seed_dir == "" for j in a["enhance_jobs"])


def test_three_seeds_plan_per_seed_jobs_and_em_seeds(tmp_path):
    from benchmark.spec import load_spec

    spec = load_spec("smoke", ["training.seeds=[0,1,2]"])
    p = _plan_keys(spec, tmp_path)
    trained = [j for j in p["train_jobs"] if hasattr(j, "training")]
    n_entries = len({j.model_label for j in trained})
    assert len(trained) == 3 * n_entries and len(set(p["train"])) == len(p["train"])
    assert all(Path(j.out_dir).name == f"seed-{j.train_seed}" for j in trained)
    by_seed = {}
    for j in p["enhance_jobs"]:
        by_seed.setdefault(j.train_seed, set()).add(j.seed)
    assert by_seed[None] == {spec.enhance.seed}  # the baselines: once, not trained
    assert {s: v for s, v in by_seed.items() if s is not None} == {s: {spec.enhance.seed + s} for s in (0, 1, 2)}


def test_composite_uses_components_of_its_own_seed(tmp_path):
    from benchmark.runner.stages import enhance
    from benchmark.spec import load_spec

    spec = load_spec("smoke", ["training.seeds=[0,1]"])
    composites = [e for e in spec.models if not getattr(enhance.model_class(e.name), "needs_training", True)]
    if not composites:
        pytest.skip("the smoke preset has no composite model")
    ctx_keys = _plan_keys(spec, tmp_path)
    train_key = {(j.model_label, j.train_seed): j.key for j in ctx_keys["train_jobs"] if hasattr(j, "training")}
    checked = 0
    for j in ctx_keys["enhance_jobs"]:
        if j.components:
            assert all(j.model[label] == train_key[(label, j.train_seed)] for label in j.model)
            checked += 1
    assert checked


def test_report_helpers_key_per_seed(tmp_path):
    """_attach_paths attaches each seed's files; the reliability table's CIs resample seeds."""
    from benchmark.report import diagnostics as diag
    from benchmark.report.runfolder import _attach_paths

    rows = [{"item_id": "c/u1", "utt_id": "u1", "condition_id": "c", "model_id": "m", "algorithm": "ldem",
             "train_seed": s} for s in (0, 1)] + [{"item_id": "c/u1", "utt_id": "u1", "condition_id": "c",
                                                  "model_id": "", "algorithm": "noisy", "train_seed": np.nan}]
    res = pd.DataFrame(rows)
    enh = res.assign(enhanced_path=[f"enhanced/m/seed-{s}/ldem/c/u1.wav" for s in (0, 1)] + ["enhanced/baseline/noisy/c/u1.wav"],
                     traces_path=["t0.npz", "t1.npz", ""])
    out = _attach_paths(tmp_path, res, None, enh)
    assert list(out["enhanced_path"]) == list(enh["enhanced_path"])
    # the same AUCs with and without seed labels: with two seeds the CI also resamples the seeds
    rng = np.random.default_rng(0)
    items = []
    for s in (0, 1):
        for u in range(6):
            items.append({"system": "m", "item_id": f"c/u{u}", "utt_id": f"u{u}", "condition_id": "c", "train_seed": s,
                          "corruption": "occl", "visual_weight_mean": 0.5, "visual_weight_mean_clean_frames": 0.6,
                          "visual_weight_mean_corrupted_frames": 0.4,
                          "visual_weight_auc": 0.6 + 0.3 * s + 0.02 * rng.standard_normal()})
    results = pd.DataFrame(items)
    with_seeds = diag.reliability_table(results, pd.DataFrame(), n_boot=400)
    no_seeds = diag.reliability_table(results.drop(columns="train_seed"), pd.DataFrame(), n_boot=400)
    w = with_seeds.iloc[0]
    n = no_seeds.iloc[0]
    assert w["auc_within"] == pytest.approx(n["auc_within"]) and w["n_items"] == 12
    # the seeds differ by 0.3: resampling them widens the CI well beyond the utterance-only one
    assert (w["auc_within_ci_high"] - w["auc_within_ci_low"]) > 2 * (n["auc_within_ci_high"] - n["auc_within_ci_low"])
