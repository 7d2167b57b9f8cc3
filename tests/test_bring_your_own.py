"""Bring your own (issue 16, parts 1 and 3) on the tiny toy corpus: a preset entry naming a
trained checkpoint is not trained and enhances exactly as the run that trained it; a mismatched
or missing checkpoint fails at load time naming both values / the path; an outside system
(``name: external``) with one file missing gives N-1 scored rows and one failed row "missing
output", marked external in the results and the report tables; ``score --systems`` adds an
outside system to a finished run."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmark.cli import main
from benchmark.configtools import ConfigError, to_dict
from benchmark.spec import load_spec, spec_from_dict

METRICS = ["si_sdr"]


def toy_preset(tmp: Path, corpus_root: Path, models: list[dict], name: str) -> Path:
    """The smoke preset cut down to the toy corpus: 2 test utterances x white 0 dB x (clean,
    occluded video); 1 training epoch; LDEM with 5 iterations; the noisy baseline; SI-SDR."""
    d = to_dict(load_spec("smoke"))
    d["name"] = name
    d["corpus"].update(name="synthetic", seed=0, n_train_speakers=4, n_val_speakers=1, n_test_speakers=2,
                       n_babble_speakers=1, utts_per_speaker=3, fps=25.0, lip_size=32, jobs=1, root=str(corpus_root))
    d["conditions"].update(n_utterances=2, noises=["white"], snrs_db=[0.0], corruptions=["none", "occlusion@0.7"])
    d["models"] = models
    d["training"].update(epochs=1, patience=1)
    d["enhance"].update(algorithms=["ldem"], baselines=["noisy"], algorithm_params={"ldem": {"n_iter": 5}})
    d["metrics"].update(names=list(METRICS))
    p = tmp / f"{name}.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def cli_run(preset: Path, run: Path) -> int:
    return main(["run", "--preset", str(preset), "--out", str(run), "--no-progress", "--no-report"])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_corpus):
    """Run A: trains the A-VAE on the toy corpus and enhances with it."""
    pytest.importorskip("models.enhancement.api")
    tmp = tmp_path_factory.mktemp("byo")
    run = tmp / "run_a"
    assert cli_run(toy_preset(tmp, tiny_corpus, [{"name": "a-vae"}], "byo-a"), run) == 0
    return tmp, run


def _external_dir(run: Path, dest: Path, drop: int = 1) -> tuple[Path, list[str]]:
    """A copy of run ``run``'s A-VAE/LDEM outputs in the accepted layout
    (``<condition_id>/<utt_id>.wav``) with ``drop`` files removed; returns it and the dropped ids."""
    shutil.copytree(run / "enhanced" / "a-vae" / "ldem", dest, ignore=shutil.ignore_patterns("*.npz"))
    files = sorted(dest.rglob("*.wav"))
    dropped = [f.relative_to(dest).with_suffix("").as_posix() for f in files[:drop]]
    for f in files[:drop]:
        f.unlink()
    return dest, dropped


def test_checkpoint_entry_is_not_trained_and_enhances_the_same(trained_run, tiny_corpus):
    tmp, run_a = trained_run
    ckpt = run_a / "models" / "a-vae"
    ext, dropped = _external_dir(run_a, tmp / "ext_outputs")
    models = [{"name": "a-vae", "checkpoint": str(ckpt)},
              {"name": "external", "id": "outside", "outputs": str(ext)}]
    run_b = tmp / "run_b"
    assert cli_run(toy_preset(tmp, tiny_corpus, models, "byo-b"), run_b) == 1  # the missing file is a failed row
    # no training job for the checkpoint entry
    assert not list((run_b / "jobs" / "train").glob("*.json"))
    assert not (run_b / "models").exists()
    a = pd.read_parquet(run_a / "results.parquet")
    b = pd.read_parquet(run_b / "results.parquet")
    key = ["item_id", "model_id", "algorithm"]
    sa = a[a["model_id"] == "a-vae"].sort_values(key).reset_index(drop=True)
    sb = b[b["model_id"] == "a-vae"].sort_values(key).reset_index(drop=True)
    assert len(sa) == len(sb) == 4 and (sb["status"] == "ok").all()
    pd.testing.assert_series_equal(sa["si_sdr"], sb["si_sdr"], rtol=1e-6)
    # the external system: N-1 scored rows (the same scores as the files it copies) + 1 "missing output"
    ex = b[b["model_id"] == "outside"].sort_values(key).reset_index(drop=True)
    assert len(ex) == 4 and ex["external"].all() and not b.loc[b["model_id"] != "outside", "external"].any()
    assert (ex["algorithm"] == "external").all() and (ex["model"] == "external").all()
    failed = ex[ex["status"] != "ok"]
    assert list(failed["item_id"]) == dropped and list(failed["error"]) == ["missing output"]
    ok = ex[ex["status"] == "ok"].set_index("item_id")["si_sdr"]
    ref = sa.set_index("item_id")["si_sdr"].loc[ok.index]
    assert ok.to_numpy() == pytest.approx(ref.to_numpy(), abs=1e-3)
    # marked external in the report's tables
    from benchmark.report.style import add_system_column
    from benchmark.report.tables import paper_table

    table = paper_table(add_system_column(b), "delta_si_sdr", n_boot=50)
    ext_rows = [line for line in table.to_markdown().splitlines() if line.startswith("| outside")]
    assert ext_rows and all(line.startswith("| outside (external) |") for line in ext_rows)
    assert "(external)" not in " ".join(line for line in table.to_markdown().splitlines() if line.startswith("| a-vae"))
    assert "external" in table.to_latex()
    assert "1 failed)" in ext_rows[0]  # the missing item is counted, not dropped
    # tested like the suite's systems: paired against the reference (the A-VAE), whatever its algorithm
    from benchmark.report.stats import paired_tests

    tests = paired_tests(add_system_column(b), "delta_si_sdr", n_boot=0)
    ext_tests = tests[tests["system"] == "outside (external)"]
    assert len(ext_tests) == 1 and ext_tests["reference"].iloc[0] == "a-vae"  # suite labels unchanged
    assert int(ext_tests["n_pairs"].iloc[0]) == 3
    # a changed checkpoint changes the enhancement key (its content checksum is keyed)
    from benchmark.runner.stages.train import checkpoint_rows

    spec_b = load_spec(str(tmp / "byo-b.yaml"))
    key1 = checkpoint_rows(spec_b)[0]["key"]
    copy = tmp / "ckpt_copy"
    shutil.copytree(ckpt, copy)
    with open(copy / "checkpoint.pt", "ab") as f:
        f.write(b"\0")
    spec_c = load_spec(str(tmp / "byo-b.yaml"), [f"models=[{{name: a-vae, checkpoint: {copy}}}]"])
    assert checkpoint_rows(spec_c)[0]["key"] != key1


def test_mismatched_or_missing_checkpoint_fails_at_load_time(trained_run):
    tmp, run_a = trained_run
    base = to_dict(load_spec(str(tmp / "byo-a.yaml")))
    ckpt = str(run_a / "models" / "a-vae")
    base["models"] = [{"name": "av-vae", "fusion": "gated", "checkpoint": ckpt}]
    with pytest.raises(ConfigError) as exc:
        spec_from_dict(base)
    msg = str(exc.value)
    assert "models[0]" in msg and "'av-vae'" in msg and "'a-vae'" in msg and ckpt in msg
    base["models"] = [{"name": "a-vae", "params": {"latent_dim": 3}, "checkpoint": ckpt}]
    with pytest.raises(ConfigError, match=r"models\[0\]\.params\.latent_dim is 3 but checkpoint"):
        spec_from_dict(base)
    base["models"] = [{"name": "a-vae", "checkpoint": str(tmp / "nowhere")}]
    with pytest.raises(ConfigError, match="nowhere.*does not exist"):
        spec_from_dict(base)


def test_score_systems_adds_rows_to_a_finished_run(trained_run, tmp_path, capsys):
    tmp, run_a = trained_run
    run = tmp_path / "run_copy"
    shutil.copytree(run_a, run, symlinks=True)
    ext, dropped = _external_dir(run_a, tmp_path / "flow", drop=1)
    before = pd.read_parquet(run / "results.parquet")
    rc = main(["score", "--out", str(run), "--systems", f"flow={ext}", "--no-report"])
    assert rc == 1  # one failed row (missing output)
    after = pd.read_parquet(run / "results.parquet")
    new = after[after["model_id"] == "flow"]
    assert len(after) == len(before) + 4 and len(new) == 4 and new["external"].all()
    assert int((new["status"] == "ok").sum()) == 3 and list(new.loc[new["status"] != "ok", "item_id"]) == dropped
    out = capsys.readouterr().out
    assert "flow (external): 3 scored, 1 failed (1 missing output)" in out
    # the suite's own rows were reused, not recomputed: the same numbers
    key = ["item_id", "model_id", "algorithm"]
    old = after[after["model_id"] != "flow"].sort_values(key).reset_index(drop=True)
    pd.testing.assert_series_equal(old["si_sdr"], before.sort_values(key).reset_index(drop=True)["si_sdr"])


def test_train_prints_each_checkpoint_and_its_preset_line(trained_run, capsys):
    tmp, run_a = trained_run
    capsys.readouterr()
    assert main(["train", "--preset", str(tmp / "byo-a.yaml"), "--out", str(run_a), "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = [line.strip()[2:] for line in out.splitlines() if line.strip().startswith("- {name: a-vae")]
    assert len(lines) == 1 and str((run_a / "models" / "a-vae").resolve()) in lines[0]
    entry = yaml.safe_load(lines[0])  # the printed line is a valid preset entry that loads
    base = to_dict(load_spec(str(tmp / "byo-a.yaml")))
    base["models"] = [entry]
    spec = spec_from_dict(base)
    assert spec.models[0].checkpoint == str((run_a / "models" / "a-vae").resolve())


def test_composite_component_can_be_a_checkpoint_entry(trained_run):
    """A mixture VAE naming a checkpoint entry as its audio component: no train job for it, and
    the composite's enhancement is keyed by the checkpoint's content checksum."""
    from benchmark.runner.stages.enhance import systems
    from benchmark.runner.stages.train import checkpoint_rows, needs_training
    from models.checkpoint import checksum

    tmp, run_a = trained_run
    base = to_dict(load_spec(str(tmp / "byo-a.yaml")))
    ckpt = run_a / "models" / "a-vae"
    base["models"] = [{"name": "a-vae", "checkpoint": str(ckpt)},
                      {"name": "av-vae", "fusion": "concat", "params": {"lip_size": 32}},
                      {"name": "mixture-vae", "params": {"audio": "a-vae", "visual": "av-vae/concat"}}]
    spec = spec_from_dict(base)
    assert [needs_training(e) for e in spec.models] == [False, True, False]
    rows = checkpoint_rows(spec) + [{"label": "av-vae/concat", "key": "k-av", "checkpoint": "/x/av.pt",
                                     "status": "ok", "error": ""}]
    table = pd.DataFrame(rows)
    mix = [kw for sysd, alg, kw in systems(spec, table) if sysd["model"] == "mixture-vae"]
    assert mix and mix[0]["components"]["a-vae"]["key"] == f"checkpoint:{checksum(ckpt)}"
    assert mix[0]["components"]["a-vae"]["checkpoint"] == str((ckpt / "checkpoint.pt").resolve())


def test_external_files_accepts_the_runner_layout_and_a_wav_scp(tmp_path):
    """Both accepted layouts give item id (``<condition_id>/<utt_id>``) -> file."""
    import numpy as np
    import soundfile as sf

    from benchmark.runner.stages.enhance import external_files

    folder = tmp_path / "sys"
    (folder / "white_snr0_none").mkdir(parents=True)
    for utt in ("u1", "u2"):
        sf.write(folder / "white_snr0_none" / f"{utt}.wav", np.zeros(160, np.float32), 16000)
    assert sorted(external_files(folder)) == ["white_snr0_none/u1", "white_snr0_none/u2"]
    scp = tmp_path / "wav.scp"
    scp.write_text(f"white_snr0_none/u1 {folder / 'white_snr0_none' / 'u1.wav'}\n")
    assert external_files(scp) == {"white_snr0_none/u1": folder / "white_snr0_none" / "u1.wav"}
