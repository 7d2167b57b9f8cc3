"""conditions.noise_options is keyed by noise name: each noise gets only its own options, checked
at load time against what its factory declares (built-in noises: their source's fields; dataset
loaders: an existing root= folder), unknown names are a ConfigError naming the key, and changing
one noise's options reruns only that noise's mixing jobs."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.configtools import ConfigError
from benchmark.spec import load_spec


def _noise_folder(root: Path, seed: int = 0) -> Path:
    import soundfile as sf

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sf.write(root / "hum.wav", (0.1 * rng.standard_normal(16000 * 6)).astype(np.float32), 16000)
    return root


def test_options_are_per_noise(tmp_path):
    folder = _noise_folder(tmp_path / "noises")
    spec = load_spec("smoke", ["conditions.noises=[white, noise-folder]",
                               f"conditions.noise_options={{noise-folder: {{root: {folder}, recursive: false}}}}"])
    assert spec.conditions.options_for("white") == {}
    assert spec.conditions.options_for("noise-folder") == {"root": str(folder), "recursive": False}


@pytest.mark.parametrize("override, key, text", [
    ("{white: {exponent: 1.0}}", "conditions.noise_options.white.exponent", "unknown key"),  # fixed by the name
    ("{car: {n_harmonicz: 4}}", "conditions.noise_options.car.n_harmonicz", "did you mean 'n_harmonics'"),
    ("{car: {n_harmonics: 0}}", "conditions.noise_options.car.n_harmonics", "out of range"),
    ("{car: {rpm_range: [1000]}}", "conditions.noise_options.car.rpm_range", "expected 2 items"),
    ("{noise-folder: {recursive: false}}", "conditions.noise_options.noise-folder.root", "required"),
    ("{noise-folder: {root: /nonexistent/noises}}", "conditions.noise_options.noise-folder.root",
     "/nonexistent/noises: noise folder for 'noise-folder' not found (expected layout: <root>/**/*.wav)"),
])
def test_noise_options_are_checked_at_load(override, key, text):
    """Each noise's options against what its factory declares, when the preset is loaded."""
    with pytest.raises(ConfigError) as ei:
        load_spec("smoke", ["conditions.noises=[white, car, noise-folder]", f"conditions.noise_options={override}"])
    msg = str(ei.value)
    assert "smoke.yaml" in msg and f"'{key}'" in msg and text in msg


@pytest.mark.parametrize("value, key", [
    ("{demand-DKITCHN: {root: /x}}", "conditions.noise_options.demand-DKITCHN"),  # typo / not in noises
    ("{root: /data/DEMAND}", "conditions.noise_options.root"),  # the old flat form
])
def test_unknown_noise_names_are_config_errors(value, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_spec("smoke", [f"conditions.noise_options={value}"])


def test_not_a_mapping_is_a_config_error():
    with pytest.raises(ConfigError, match=r"conditions\.noise_options\.white.*mapping"):
        load_spec("smoke", ["conditions.noise_options={white: 3}"])


def test_cli_exit_code_names_the_key(capsys):
    from benchmark.cli import main

    assert main(["run", "--preset", "smoke", "--out", "/nonexistent/never", "--set",
                 "conditions.noise_options={root: /data/DEMAND}"]) == 2
    assert "conditions.noise_options.root" in capsys.readouterr().err


def test_mixing_passes_each_noise_only_its_own_options(tmp_path, tiny_corpus):
    """A built-in noise and a dataset loader in one grid: the loader gets root=, the built-in noise
    nothing (it would reject root=); a change of the loader's options reruns only its jobs."""
    from benchmark.runner.pipeline import RunOptions, run_stages
    from tests.conftest import TINY_CORPUS

    folder_a = _noise_folder(tmp_path / "noise_a", 0)
    folder_b = _noise_folder(tmp_path / "noise_b", 1)
    spec = load_spec("smoke", ["conditions.noises=[white, noise-folder]", "conditions.snrs_db=[0]",
                               "conditions.corruptions=[none]", "conditions.n_utterances=2",
                               f"conditions.noise_options={{noise-folder: {{root: {folder_a}}}}}"])
    spec = dataclasses.replace(spec, corpus=dataclasses.replace(TINY_CORPUS, root=str(tiny_corpus)))
    run = tmp_path / "run"

    def mix(s):
        summary, produced = run_stages(s, run, "mix", RunOptions(progress=False, report=False))
        return produced["mixtures"], summary.stages["mix"]

    df, st = mix(spec)
    assert set(df["status"]) == {"ok"} and sorted(df["noise"].unique()) == ["noise-folder", "white"]
    assert st.ran == 2 and not st.failed_keys
    cs2 = dataclasses.replace(spec.conditions, noise_options={"noise-folder": {"root": str(folder_b)}})
    df2, st2 = mix(dataclasses.replace(spec, conditions=cs2))
    assert st2.ran == 1 and st2.cached == 1  # only the noise-folder job
    a = df.set_index("item_id")["noise_path"]
    w = [i for i in a.index if i.startswith("white")]
    assert len(w) == 2
    pd.testing.assert_series_equal(df2.set_index("item_id")["noise_path"][w], a[w])
