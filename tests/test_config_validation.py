"""Configuration errors before any work: every registered name and every nested settings map of a
spec (noise options and noise dataset folders included) is checked at load time
(benchmark.spec.check_spec), ``train --model/--fusion`` typos exit 2, the algorithm / model config
dataclasses enforce their declared ranges on direct construction too, and ``validate`` prints the
resolved spec (exit 0) or the error (exit 2)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmark.configtools import ConfigError
from benchmark.spec import PRESET_DIR, load_spec

SMOKE_MODELS = load_spec("smoke").to_dict()["models"]


def _preset(tmp_path: Path, extra: dict, name: str = "exp.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump({"extends": "smoke", **extra}))
    return p


def _models_with(entry: dict) -> dict:
    """The smoke models plus ``entry`` (lists replace, they do not merge)."""
    return {"models": SMOKE_MODELS + [entry]}


# the three typos of the issue: each inside a nested settings map that only the algorithm, the
# fusion or the model reads
TYPOS = {
    "algorithm": ({"enhance": {"algorithm_params": {"ldem": {"n_iterr": 30}}}},
                  "enhance.algorithm_params.ldem.n_iterr", "n_iter"),
    "fusion": (_models_with({"name": "av-vae", "fusion": "cross-attention", "params": {"fusion_params": {"windw": 4}}}),
               f"models[{len(SMOKE_MODELS)}].params.fusion_params.windw", "window"),
    "model": (_models_with({"name": "av-vae", "fusion": "gated", "id": "gated/l8", "params": {"latent_dm": 8}}),
              f"models[{len(SMOKE_MODELS)}].params.latent_dm", "latent_dim"),
    # the options of a noise, checked against what its factory declares (noise_sets.base)
    "noise": ({"conditions": {"noises": ["white", "car"], "noise_options": {"car": {"n_harmonicz": 4}}}},
              "conditions.noise_options.car.n_harmonicz", "n_harmonics"),
}


@pytest.mark.parametrize("typo", sorted(TYPOS))
def test_typo_in_a_nested_map_names_file_key_and_suggestion(tmp_path, typo):
    extra, key, suggestion = TYPOS[typo]
    p = _preset(tmp_path, extra)
    with pytest.raises(ConfigError) as ei:
        load_spec(str(p))
    msg = str(ei.value)
    assert str(p) in msg and f"unknown key '{key}'" in msg and f"did you mean '{suggestion}'?" in msg


@pytest.mark.parametrize("command", ["run", "train", "mix", "enhance"])
@pytest.mark.parametrize("typo", sorted(TYPOS))
def test_stages_stop_before_any_work(tmp_path, monkeypatch, capsys, command, typo):
    from benchmark.cli import main

    data = tmp_path / "data"
    monkeypatch.setenv("AVBENCH_DATA", str(data))  # where a corpus build would write
    extra, key, _ = TYPOS[typo]
    p = _preset(tmp_path, extra)
    out = tmp_path / "run"
    assert main([command, "--preset", str(p), "--out", str(out)]) == 2
    assert not out.exists() and not data.exists()  # nothing was written
    assert key in capsys.readouterr().err


# noise options that only the mixing stage (after training) used to check
NOISE_ERRORS = {
    "type": ({"noises": ["white", "car"], "noise_options": {"car": {"harmonic_level_db": "loud"}}},
             "key 'conditions.noise_options.car.harmonic_level_db': expected a number, got str"),
    "no-root": ({"noises": ["white", "demand-DKITCHEN"], "noise_options": {"demand-DKITCHEN": {"channel": "ch02"}}},
                "key 'conditions.noise_options.demand-DKITCHEN.root': required"),
    "missing-root": ({"noises": ["white", "musan"], "noise_options": {"musan": {"root": "/nonexistent/musan"}}},
                     "key 'conditions.noise_options.musan.root': /nonexistent/musan: noise folder for 'musan' not "
                     "found (expected layout: <root>/noise/free-sound/*.wav"),
}


@pytest.mark.parametrize("command", ["run", "train", "mix"])
@pytest.mark.parametrize("case", sorted(NOISE_ERRORS))
def test_noise_option_errors_stop_before_any_work(tmp_path, monkeypatch, capsys, command, case):
    from benchmark.cli import main

    data = tmp_path / "data"
    monkeypatch.setenv("AVBENCH_DATA", str(data))
    conditions, text = NOISE_ERRORS[case]
    p = _preset(tmp_path, {"conditions": conditions})
    out = tmp_path / "run"
    assert main([command, "--preset", str(p), "--out", str(out)]) == 2
    assert not out.exists() and not data.exists()
    err = capsys.readouterr().err
    assert str(p) in err and text in err


@pytest.mark.parametrize("argv, text", [
    (["--model", "av-vea", "--fusion", "gated"], "--model: unknown model 'av-vea' (did you mean 'av-vae'?)"),
    (["--model", "av-vae", "--fusion", "gatd"], "--fusion: unknown fusion 'gatd' (did you mean 'gated'?)"),
])
def test_train_model_and_fusion_typos_exit_2(tmp_path, monkeypatch, capsys, argv, text):
    from benchmark.cli import main

    data = tmp_path / "data"
    monkeypatch.setenv("AVBENCH_DATA", str(data))
    out = tmp_path / "run"
    assert main(["train", "--preset", "smoke", "--out", str(out), *argv]) == 2
    assert not out.exists() and not data.exists()
    assert text in capsys.readouterr().err


def test_out_of_range_algorithm_values(tmp_path):
    with pytest.raises(ConfigError, match=r"exp\.yaml: key 'enhance\.algorithm_params\.ldem\.n_iter': value -1 out of range"):
        load_spec(str(_preset(tmp_path, {"enhance": {"algorithm_params": {"ldem": {"n_iter": -1}}}})))
    # a cross-field rule of the config class: MCEM keeps the samples after the burn-in
    p = _preset(tmp_path, {"enhance": {"algorithms": ["mcem"], "algorithm_params": {"mcem": {"n_steps": 20, "burn_in": 20}}}})
    with pytest.raises(ConfigError, match=r"key 'enhance\.algorithm_params\.mcem\.burn_in': 20 must be smaller than n_steps \(20\)"):
        load_spec(str(p))
    # settings of an algorithm the run does not use are checked as well
    with pytest.raises(ConfigError, match=r"key 'enhance\.algorithm_params\.vem\.posterior': must be one of"):
        load_spec("smoke", ["enhance.algorithm_params.vem={posterior: encodr}"])


def test_wrong_types_in_nested_maps():
    with pytest.raises(ConfigError, match=r"key 'enhance\.algorithm_params\.ldem\.n_chains': expected an integer"):
        load_spec("smoke", ["enhance.algorithm_params.ldem.n_chains=five"])
    with pytest.raises(ConfigError, match=r"key 'models\[0\]\.params\.latent_dim': expected an integer, got float"):
        load_spec("smoke", ["models=[{name: a-vae, params: {latent_dim: 2.5}}]"])
    with pytest.raises(ConfigError, match=r"key 'models\[0\]\.training\.epochs': expected an integer"):
        load_spec("smoke", ["models=[{name: a-vae, training: {epochs: many}}]"])


@pytest.mark.parametrize("override, key, text", [
    ("models=[{name: a-vae}, {name: av-vae, fusion: gatd}]", "models[1].fusion", "did you mean 'gated'"),
    ("models=[{name: a-vea}]", "models[0].name", "did you mean 'a-vae'"),
    ("models=[{name: a-vae}, {name: av-vae, fusion: gated, params: {frontend: cnn2}}]", "models[1].params.frontend",
     "unknown visual front-end 'cnn2'"),
    ("models=[{name: a-vae}, {name: av-vae, fusion: concat}, {name: mixture-vae, params: {visual: av-vae/concta}}]",
     "models[2].params.visual", "did you mean 'av-vae/concat'"),
    ("models=[{name: a-vae}, {name: av-vae, fusion: gated, params: {fusion_params: {out_dim: 64}}}]",
     "models[1].params.fusion_params.out_dim", "set by the model (params.hidden)"),
    ("models=[{name: a-vae}, {name: av-vae, fusion: gated, params: {fusion_params: {score_hidden: 0}}}]",
     "models[1].params.fusion_params.score_hidden", "value 0 out of range"),
    ("models=[{name: a-vae}, {name: av-vae, params: {fusion: null}}]", "models[1].fusion", "needs a fusion"),
    ("enhance.algorithms=[ldme]", "enhance.algorithms[0]", "did you mean 'ldem'"),
    ("enhance.algorithm_params={ldme: {n_iter: 3}}", "enhance.algorithm_params.ldme", "did you mean 'ldem'"),
    ("enhance.baselines=[oracle-wiener, noisey]", "enhance.baselines[1]", "did you mean 'noisy'"),
    ("conditions.noises=[white, babbel]", "conditions.noises[1]", "did you mean 'babble'"),
    ("conditions.corruptions=[none, blurr@0.5]", "conditions.corruptions[1]", "unknown corruption 'blurr'"),
    ("metrics.names=[si_sdr, pesqq]", "metrics.names[1]", "did you mean 'pesq'"),
    ("corpus.name=gird", "corpus.name", "did you mean 'grid'"),
    ("corpus.options={min_duraton_s: 1.0}", "corpus.options.min_duraton_s", "did you mean 'min_duration_s'"),
    ("training.augment_kinds=[occlusion, blurr]", "training.augment_kinds[1]", "unknown corruption 'blurr'"),
])
def test_registered_names_are_resolved_at_load(override, key, text):
    with pytest.raises(ConfigError) as ei:
        load_spec("smoke", [override])
    msg = str(ei.value)
    assert "smoke.yaml" in msg and key in msg and text in msg


def test_direct_api_enforces_declared_ranges():
    """The config dataclasses check themselves, for callers that never see a preset."""
    from models.enhancement.api import algorithm_config
    from models.enhancement.ldem import LDEMConfig
    from models.enhancement.mcem import MCEMConfig
    from models.vae import VAEConfig

    with pytest.raises(ConfigError, match=r"LDEMConfig\.n_iter: value -1 out of range"):
        LDEMConfig(n_iter=-1)
    with pytest.raises(ConfigError, match=r"LDEMConfig\.n_chains: expected int"):
        LDEMConfig(n_chains=2.5)
    with pytest.raises(ConfigError, match=r"MCEMConfig\.final_burn_in: 100 must be smaller than final_steps"):
        MCEMConfig(final_burn_in=100)
    with pytest.raises(ValueError, match=r"PEEMConfig\.lr: value -0\.1 out of range"):
        algorithm_config("peem", {"lr": -0.1})
    with pytest.raises(ValueError, match=r"NMFOnlyConfig\.n_iter"):
        algorithm_config("nmf-only", {"n_iter": 0})
    with pytest.raises(ValueError, match=r"update: expected letters of 'WHg'"):
        algorithm_config("vem", {"update": "WHx"})
    with pytest.raises(ValueError, match=r"VAEConfig\.latent_dim: value 0 out of range"):
        VAEConfig(latent_dim=0)
    with pytest.raises(ValueError, match=r"VAEConfig\.cvae_alpha"):
        VAEConfig(cvae_alpha=1.5)
    import numpy as np

    assert LDEMConfig(n_iter=np.int64(5)).n_iter == 5  # NumPy integers are integers


def test_load_leaves_the_global_torch_rng_alone():
    import torch

    torch.manual_seed(123)
    before = torch.get_rng_state()
    load_spec("smoke")  # builds each VAE entry once to check it
    assert torch.equal(torch.get_rng_state(), before)


# -- the validate command ------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
def test_validate_prints_the_resolved_spec_of_every_preset(preset, capsys):
    from benchmark.cli import main

    assert main(["validate", "--preset", preset]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    spec, resolved = docs
    assert spec == load_spec(preset).to_dict()
    assert set(resolved["algorithms"]) == set(spec["enhance"]["algorithms"]) | set(spec["enhance"]["baselines"])
    assert len(resolved["models"]) == len(spec["models"])
    if "ldem" in resolved["algorithms"]:  # defaults filled in, preset values applied
        ldem = resolved["algorithms"]["ldem"]
        assert ldem["n_iter"] == spec["enhance"]["algorithm_params"].get("ldem", {}).get("n_iter", 100)
        assert ldem["lr"] == 5e-3


def test_validate_applies_set_and_returns_2_on_an_error(tmp_path, capsys):
    from benchmark.cli import main

    assert main(["validate", "--preset", "smoke", "--set", "enhance.algorithm_params.ldem.n_iter=7"]) == 0
    spec, resolved = yaml.safe_load_all(capsys.readouterr().out)
    assert spec["enhance"]["algorithm_params"]["ldem"]["n_iter"] == 7 and resolved["algorithms"]["ldem"]["n_iter"] == 7
    p = _preset(tmp_path, TYPOS["algorithm"][0], name="typo.yaml")
    assert main(["validate", "--preset", str(p)]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "typo.yaml" in cap.err and "enhance.algorithm_params.ldem.n_iterr" in cap.err
    assert "did you mean 'n_iter'?" in cap.err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["typo.yaml"]  # nothing written
