"""A reduced end-to-end run through every stage (corpus -> train -> mix -> enhance -> score)
on the tiny synthetic corpus, through the CLI, plus what the runner promises on the real
pipeline: caching (a rerun does nothing; changing one setting reruns only what depends on it),
failure isolation with --retry-failed, status and run.json; and, marked slow, reproducibility
(two fresh runs, serial vs 2 workers), Dask equivalence and SIGKILL/resume on the real stages."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmark.cli import main
from benchmark.configtools import to_dict

REPO = Path(__file__).resolve().parents[1]
METRICS = ["si_sdr", "stoi"]


def reduced_preset(tmp: Path, corpus_root: Path, name: str = "tiny.yaml", **sections) -> Path:
    """The smoke preset cut down: tiny corpus, 2 test utterances x (white 0 dB) x (clean,
    occluded video); A-VAE + gated AV-VAE, 1 epoch; LDEM with 5 iterations; noisy and oracle
    baselines; SI-SDR and STOI."""
    from benchmark.spec import load_spec

    d = to_dict(load_spec("smoke"))
    d["name"] = "tiny"
    d["corpus"].update(name="synthetic", seed=0, n_train_speakers=4, n_val_speakers=1, n_test_speakers=2,
                       n_babble_speakers=1, utts_per_speaker=3, fps=25.0, lip_size=32, jobs=1, root=str(corpus_root))
    d["conditions"].update(n_utterances=2, noises=["white"], snrs_db=[0.0], corruptions=["none", "occlusion@0.7"])
    d["models"] = [{"name": "a-vae"}, {"name": "av-vae", "fusion": "gated", "params": {"lip_size": 32}}]
    d["training"].update(epochs=1, patience=1)
    d["enhance"].update(algorithms=["ldem"], baselines=["noisy", "oracle-wiener"],
                        algorithm_params={"ldem": {"n_iter": 5}})
    d["metrics"].update(names=list(METRICS))
    for sec, upd in sections.items():
        if isinstance(upd, dict) and isinstance(d.get(sec), dict):
            d[sec].update(upd)
        else:
            d[sec] = upd
    p = tmp / name
    p.write_text(yaml.safe_dump(d))
    return p


def metric_table(run: Path) -> pd.DataFrame:
    """The deterministic part of the results (no timings)."""
    df = pd.read_parquet(run / "results.parquet")
    keep = ["item_id", "model_id", "algorithm", "status"]
    keep += [c for c in df.columns if any(c in (m, f"input_{m}", f"delta_{m}") for m in METRICS)]
    keep += [c for c in df.columns if c.startswith("visual_weight")]
    return df[keep].sort_values(["item_id", "model_id", "algorithm"]).reset_index(drop=True)


def records(run: Path, stage: str) -> dict[str, dict]:
    d = run / "jobs" / stage
    return {p.stem: json.loads(p.read_text()) for p in d.glob("*.json")} if d.exists() else {}


def cli_run(preset: Path, run: Path, *extra: str) -> int:
    return main(["run", "--preset", str(preset), "--out", str(run), "--no-progress", "--no-report", *extra])


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, tiny_corpus):
    """One reduced run through the CLI, shared by the tests of this module."""
    pytest.importorskip("models.enhancement.api", reason="the enhancement stage (models.enhancement.api) is not there yet")
    tmp = tmp_path_factory.mktemp("e2e")
    preset = reduced_preset(tmp, tiny_corpus)
    run = tmp / "run"
    t0 = time.perf_counter()
    rc = cli_run(preset, run)
    took = time.perf_counter() - t0
    print(f"\nreduced end-to-end run: {took:.1f} s, exit code {rc}")
    return {"run": run, "preset": preset, "rc": rc, "tmp": tmp, "seconds": took, "corpus": tiny_corpus}


def test_reduced_end_to_end(e2e):
    run = e2e["run"]
    assert e2e["rc"] == 0, pd.read_csv(run / "failures.csv").to_string() if (run / "failures.csv").exists() else ""
    df = pd.read_parquet(run / "results.parquet")
    # one row per (utterance, condition, model, algorithm): 2 utts x 2 conditions x (2 models + 2 baselines)
    assert len(df) == 2 * 2 * 4
    assert not df.duplicated(["item_id", "model_id", "algorithm"]).any()
    assert set(df["status"]) == {"ok"}
    assert set(zip(df["model_id"], df["algorithm"])) == {
        ("", "noisy"), ("", "oracle-wiener"), ("a-vae", "ldem"), ("av-vae/gated", "ldem")}
    for m in METRICS:
        assert {m, f"input_{m}", f"delta_{m}"} <= set(df.columns)
        assert np.isfinite(df[m]).all()
        np.testing.assert_allclose(df[f"delta_{m}"], df[m] - df[f"input_{m}"], rtol=1e-6, atol=1e-6)
    # the unprocessed baseline gains nothing; the oracle gains a lot
    noisy = df[df["algorithm"] == "noisy"]
    assert np.abs(noisy["delta_si_sdr"]).max() < 0.05
    assert (df[df["algorithm"] == "oracle-wiener"]["delta_si_sdr"] > 3).all()
    # reliability weights: the gated fusion has them (AUC where some frames are corrupted), the A-VAE has none
    gated = df[df["model_id"] == "av-vae/gated"]
    assert gated["visual_weight_mean"].between(0, 1).all()
    occl = gated[gated["corruption"] != "none"]
    assert np.isfinite(occl["visual_weight_auc"]).all() and occl["visual_weight_auc"].between(0, 1).all()
    assert df[df["model_id"] == "a-vae"]["visual_weight_mean"].isna().all()
    assert (df["wall_time_s"] >= 0).all()
    # the other tables and provenance
    csv = pd.read_csv(run / "results.csv")
    assert len(csv) == len(df)
    assert len(pd.read_parquet(run / "mixtures.parquet")) == 4
    assert len(pd.read_parquet(run / "enhanced.parquet")) == 16
    info = json.loads((run / "run.json").read_text())
    assert info["spec"]["conditions"]["n_utterances"] == 2 and info["seeds"]["seed"] == 0
    assert info["git_commit"] and info["versions"]["torch"] and info["machine"]["cpu_count"]
    assert "cuda_available" in info["device"]
    assert (run / "corpus").resolve() == Path(e2e["corpus"]).resolve()
    for p in (run / "enhanced").rglob("*.wav"):
        assert p.stat().st_size > 1000
    assert not list(run.rglob("*.tmp"))


def test_rerun_is_fully_cached_and_identical(e2e):
    run = e2e["run"]
    before = metric_table(run)
    mtimes = {p: p.stat().st_mtime_ns for p in (run / "enhanced").rglob("*.wav")}
    from benchmark.runner.pipeline import RunOptions, run_pipeline
    from benchmark.spec import load_spec

    s = run_pipeline(load_spec(str(e2e["preset"])), run, RunOptions(progress=False, report=False))
    assert all(r.ran == 0 for r in s.stages.values()), s.text()
    pd.testing.assert_frame_equal(metric_table(run), before)
    assert mtimes == {p: p.stat().st_mtime_ns for p in (run / "enhanced").rglob("*.wav")}


def test_status_command(e2e, capsys):
    from benchmark.runner.status import run_status

    st = run_status(e2e["run"])
    by = {s.stage: s for s in st["stages"]}
    assert by["score"].planned == by["score"].done > 0 and by["score"].pending == 0
    assert by["train"].done == 2 and st["running"] is None
    assert main(["status", "--out", str(e2e["run"])]) == 0
    out = capsys.readouterr().out
    assert "enhance" in out and "ETA" in out


def test_one_changed_setting_reruns_only_what_depends_on_it(e2e):
    """More metrics: only the scoring jobs run again; the rest is cached."""
    run = e2e["run"]
    preset = reduced_preset(e2e["tmp"], e2e["corpus"], "tiny-estoi.yaml", metrics={"names": METRICS + ["estoi"]})
    from benchmark.runner.pipeline import RunOptions, run_pipeline
    from benchmark.spec import load_spec

    s = run_pipeline(load_spec(str(preset)), run, RunOptions(progress=False, report=False))
    ran = {k: r.ran for k, r in s.stages.items()}
    assert ran["corpus"] == ran["train"] == ran["mix"] == ran["enhance"] == 0
    assert ran["score"] == len(s.stages["score"].keys) > 0
    df = pd.read_parquet(run / "results.parquet")
    assert "estoi" in df and np.isfinite(df["estoi"]).all() and len(df) == 16
    # ... and going back needs nothing new (the earlier score jobs are still on disk)
    s2 = run_pipeline(load_spec(str(e2e["preset"])), run, RunOptions(progress=False, report=False))
    assert all(r.ran == 0 for r in s2.stages.values())
    assert "estoi" not in pd.read_parquet(run / "results.parquet")


def test_failure_isolation_on_the_real_pipeline(e2e, monkeypatch):
    """A model whose training raises inside its job fails alone: its rows are failure rows with
    the train stage's reason, the rest is intact, the exit code is non-zero, and --retry-failed
    retries it a bounded number of times. (A misspelt name never gets that far: load-time
    validation rejects it with exit code 2 before any work.)"""
    import shutil

    import models.training

    run = e2e["tmp"] / "with-broken-model"
    shutil.copytree(e2e["run"], run, symlinks=True)  # a run folder can be copied: everything is cached
    typo = [{"name": "a-vae"}, {"name": "av-vae", "fusion": "no-such-fusion", "id": "broken"}]
    assert cli_run(reduced_preset(e2e["tmp"], e2e["corpus"], "tiny-typo.yaml", models=typo), run) == 2
    assert not (run / "jobs" / "train").exists() or len(records(run, "train")) == 2  # nothing new ran

    real = models.training.train_model

    def train_model(entry, *args, **kwargs):
        if entry.label == "broken":
            raise RuntimeError("injected training failure")
        return real(entry, *args, **kwargs)

    # the train job calls models.training.train_model in this process (one job to run: serial)
    monkeypatch.setattr(models.training, "train_model", train_model)
    models_ = [{"name": "a-vae"}, {"name": "av-vae", "fusion": "gated", "params": {"lip_size": 32}},
               {"name": "av-vae", "fusion": "concat", "params": {"lip_size": 32}, "id": "broken"}]
    preset = reduced_preset(e2e["tmp"], e2e["corpus"], "tiny-broken.yaml", models=models_)
    assert cli_run(preset, run) == 1
    last = json.loads((run / "run.json").read_text())["invocations"][-1]["summary"]["stages"]
    assert last["train"]["ran"] == 1 and last["mix"]["ran"] == last["enhance"]["ran"] == 0  # only the new model
    df = pd.read_parquet(run / "results.parquet")
    assert len(df) == 2 * 2 * 5
    broken = df[df["model_id"] == "broken"]
    assert len(broken) == 4 and (broken["status"] == "failed").all()
    assert broken["error"].str.startswith("train: training of broken failed").all()
    assert broken["error"].str.contains("injected training failure").all() and broken["si_sdr"].isna().all()
    assert (df[df["model_id"] != "broken"]["status"] == "ok").all()
    fails = pd.read_csv(run / "failures.csv")
    assert list(fails["stage"]) == ["train"] and "injected training failure" in fails["error"].iloc[0]
    assert "Traceback" in fails["traceback"].iloc[0]
    # without --retry-failed: nothing reruns; with it: only the failed job, until max attempts
    key = fails["key"].iloc[0]
    assert cli_run(preset, run) == 1
    assert records(run, "train")[key]["attempts"] == 1
    assert cli_run(preset, run, "--retry-failed", "--max-attempts", "2") == 1
    assert records(run, "train")[key]["attempts"] == 2
    assert cli_run(preset, run, "--retry-failed", "--max-attempts", "2") == 1
    assert records(run, "train")[key]["attempts"] == 2  # no infinite retries


# ---------------------------------------------------------------------------------------------
# slow: the same guarantees across fresh runs on the real stages


@pytest.mark.slow
def test_reproducible_serial_vs_two_workers_and_dask(e2e):
    """Same preset and seed in fresh folders: identical metric tables (the shared run with the
    preset's 2 joblib workers, a serial run, a 2-worker Dask LocalCluster), training included."""
    base = metric_table(e2e["run"]) if e2e["rc"] == 0 else None
    preset = e2e["preset"]
    a, b = e2e["tmp"] / "repro-serial", e2e["tmp"] / "repro-dask"
    assert cli_run(preset, a, "--jobs", "1") == 0
    assert cli_run(preset, b, "--dask-local", "2") == 0
    pd.testing.assert_frame_equal(metric_table(a), metric_table(b))
    if base is not None:
        pd.testing.assert_frame_equal(metric_table(a), base)


@pytest.mark.slow
def test_sigkill_during_real_run_then_resume(e2e):
    """SIGKILL the real pipeline (a subprocess) while it enhances, rerun: same table as the
    uninterrupted run, nothing lost, nothing duplicated, no temp files."""
    run = e2e["tmp"] / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, str(REPO / "run_benchmark.py"), "run", "--preset", str(e2e["preset"]), "--out", str(run),
           "--no-progress", "--no-report"]
    for stage, n in (("train", 1), ("mix", 2), ("enhance", 2)):
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        t0 = time.time()
        while time.time() - t0 < 300 and proc.poll() is None and len(records(run, stage)) < n:
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert subprocess.run(cmd, cwd=REPO, env=env, capture_output=True).returncode == 0
    pd.testing.assert_frame_equal(metric_table(run), metric_table(e2e["run"]))
    assert not list(run.rglob("*.tmp"))


def test_input_scores_are_computed_once_per_item(e2e, monkeypatch):
    """The mixture's input_* scores are computed once per item (score_input jobs), not once per
    (item, model, algorithm); the table is identical to the one of the first run."""
    import shutil

    import benchmark.metrics as metrics

    run = e2e["tmp"] / "rescore"
    shutil.copytree(e2e["run"], run, symlinks=True)
    shutil.rmtree(run / "jobs" / "score")
    for t in ("score", "score_input"):
        shutil.rmtree(run / "shards" / t, ignore_errors=True)
    calls = []
    real = metrics.score_input

    def counting(ref, mixture, **kw):
        calls.append(1)
        return real(ref, mixture, **kw)

    monkeypatch.setattr(metrics, "score_input", counting)
    real_pair = metrics.score_pair
    from benchmark.runner.pipeline import RunOptions, run_pipeline
    from benchmark.spec import load_spec

    s = run_pipeline(load_spec(str(e2e["preset"])), run, RunOptions(progress=False, report=False))
    assert s.ok, s.text()
    n_items = len(pd.read_parquet(run / "mixtures.parquet"))
    assert len(calls) == n_items == 4  # not 16 (4 items x 4 systems)
    inp = pd.read_parquet(run / "shards" / "score_input")
    assert sorted(inp["item_id"]) == sorted(pd.read_parquet(run / "mixtures.parquet")["item_id"])
    pd.testing.assert_frame_equal(metric_table(run), metric_table(e2e["run"]))
    df = pd.read_parquet(run / "results.parquet")
    assert (df.groupby("item_id")["input_si_sdr"].nunique() == 1).all()
    # ... and equal to scoring each pair from scratch (input scores recomputed per pair)
    from benchmark.audio_io import read_audio

    for r in df[df["status"] == "ok"].head(3).to_dict("records"):
        enh = pd.read_parquet(run / "enhanced.parquet").set_index(["item_id", "model_id", "algorithm"])
        est = read_audio(run / enh.loc[(r["item_id"], r["model_id"], r["algorithm"]), "enhanced_path"], validate=False)
        mix_row = pd.read_parquet(run / "mixtures.parquet").set_index("item_id").loc[r["item_id"]]
        ref = read_audio(run / mix_row["clean_path"], validate=False)
        mix = read_audio(run / mix_row["mixture_path"], validate=False)
        fresh = real_pair(ref, est, mix, names=METRICS)
        for k, v in fresh.items():
            if not k.endswith("_error"):
                assert v == pytest.approx(r[k], abs=1e-9), k


def test_report_goes_to_reports_name_or_report_dir(e2e, tmp_path, monkeypatch):
    """`run --out runs/NAME` writes the report to reports/NAME/ relative to the current directory
    (as `report runs/NAME` does), or to --report-dir; a report failure does not lose results."""
    import shutil

    run = tmp_path / "runs" / "myrun"
    shutil.copytree(e2e["run"], run, symlinks=True)
    preset = reduced_preset(e2e["tmp"], e2e["corpus"], "tiny-report.yaml",
                            report={"bootstrap": 20, "n_examples": 1, "figure_formats": ["png"]})
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    assert main(["run", "--preset", str(preset), "--out", str(run), "--no-progress"]) == 0
    print(f"report of the reduced run: {time.perf_counter() - t0:.1f} s")
    assert (tmp_path / "reports" / "myrun" / "index.html").stat().st_size > 1000
    last = json.loads((run / "run.json").read_text())["invocations"][-1]["summary"]
    assert last["report"] == str(Path("reports") / "myrun" / "index.html") or last["report"].endswith("myrun/index.html")
    assert last["stages"]["report"]["failed"] == 0 and last["stages"]["enhance"]["ran"] == 0
    other = tmp_path / "elsewhere"
    assert main(["run", "--preset", str(preset), "--out", str(run), "--no-progress", "--report-dir", str(other)]) == 0
    assert (other / "index.html").exists()


def test_stage_commands_reuse_the_runs_jobs(e2e, tmp_path, capsys):
    """`mix`, `train`, `enhance` and `score --preset/--out` run the runner's jobs: on a finished run
    folder they recompute nothing; `mix` in a fresh folder makes exactly the mixing jobs of `run`
    (also with --corpus, which identifies the corpus by its checksum)."""
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(e2e["run"], run, symlinks=True)
    before = metric_table(run)
    preset = str(e2e["preset"])
    jobs_before = {p: p.stat().st_mtime_ns for p in (run / "jobs").rglob("*.json")}
    for argv in (["mix", "--preset", preset, "--out", str(run)],
                 ["train", "--preset", preset, "--out", str(run), "--no-progress"],
                 ["enhance", "--preset", preset, "--out", str(run), "--no-progress"],
                 ["score", "--preset", preset, "--out", str(run)]):
        assert main(argv) == 0, argv
        last = json.loads((run / "run.json").read_text())["invocations"][-1].get("summary")
        if last is not None:
            assert last["stages"] and all(s["ran"] == 0 for s in last["stages"].values()), (argv[0], last)
        # no job ran: no new job record, none rewritten
        assert {p: p.stat().st_mtime_ns for p in (run / "jobs").rglob("*.json")} == jobs_before, argv[0]
    assert "training summary" in capsys.readouterr().out
    pd.testing.assert_frame_equal(metric_table(run), before)
    for i, extra in enumerate(([], ["--corpus", str(e2e["corpus"])])):
        fresh = tmp_path / f"fresh{i}"
        assert main(["mix", "--preset", preset, "--out", str(fresh), *extra]) == 0
        assert set(records(fresh, "mix")) == set(records(e2e["run"], "mix"))
        assert len(pd.read_parquet(fresh / "mixtures.parquet")) == 4
