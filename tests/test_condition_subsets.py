"""Condition filters (``benchmark/conditions/subsets.py``): ``conditions.exclude`` removes cells of
the grid, ``enhance.subsets`` runs an algorithm or a model on part of it; both are validated at
load time, before any work."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmark.conditions.build import expand_conditions
from benchmark.conditions.subsets import excluded, matches
from benchmark.configtools import ConfigError
from benchmark.configtools import deep_merge
from benchmark.spec import load_raw, parse_overrides, spec_from_dict


def _study(overrides: list[str] = ()):
    """The study preset without its own condition filters (``exclude``, ``subsets``), plus overrides."""
    raw, _ = load_raw("study")
    raw["conditions"].pop("exclude", None)
    raw["enhance"].pop("subsets", None)
    return spec_from_dict(deep_merge(raw, parse_overrides(list(overrides))), "study.yaml")


def test_matches_each_named_axis_and_ignores_the_others():
    f = {"snrs_db": [-5.0], "corruptions": ["bursty@0.5"]}
    assert matches(f, "babble", -5, "bursty@0.5")
    assert not matches(f, "babble", 0.0, "bursty@0.5")
    assert not matches(f, "babble", -5.0, "none")
    assert matches({"noises": ["white"], "algorithms": ["ldem"]}, "white", 3.0, "none")
    assert not matches({"noises": ["white"]}, "babble", 3.0, "none")
    assert matches(None, "x", 0.0, "none") and matches({}, "x", 0.0, "none")
    assert excluded([{"noises": ["cafe"]}, f], "white", -5.0, "bursty@0.5")
    assert not excluded([], "white", -5.0, "bursty@0.5")


def test_exclude_drops_cells_of_the_grid():
    spec = _study(["conditions.exclude=[{snrs_db: [0.0], corruptions: [bursty@0.5]}]"])
    conds = expand_conditions(spec.conditions)
    full = expand_conditions(_study().conditions)
    assert len(full) == 20 and len(conds) == 15
    assert not [c for c in conds if c.snr_db == 0.0 and c.corruption != "none"]
    assert {c.condition_id for c in conds} < {c.condition_id for c in full}


@pytest.mark.parametrize("override, message", [
    ("enhance.subsets={mcme: {snrs_db: [-5.0]}}", "neither an algorithm"),
    ("enhance.subsets={ldem: {snrs_db: [-7.0]}}", "-7.0 is not in conditions.snrs_db"),
    ("enhance.subsets={ldem: {snr: [-5.0]}}", "did you mean 'snrs_db'"),
    ("enhance.subsets={ldem: {noises: []}}", "non-empty list"),
    ("enhance.subsets={a-vae: {algorithms: [vem]}}", "'vem' is not in enhance.algorithms"),
    ("enhance.subsets={ldem: {algorithms: [ldem]}}", "unknown key 'enhance.subsets.ldem.algorithms'"),
    ("conditions.exclude=[{corruptions: [blur@0.5]}]", "'blur@0.5' is not in conditions.corruptions"),
    ("conditions.exclude=[{snrs_db: [-5.0, 0.0]}]", "leaves no condition"),
])
def test_bad_filters_fail_at_load_time_naming_the_key(override, message):
    with pytest.raises(ConfigError, match="study.yaml") as err:
        _study([override])
    assert message in str(err.value)


def _mix_table(spec) -> pd.DataFrame:
    return pd.DataFrame([{"item_id": f"{c.condition_id}/u{u}", "mix_id": f"m-{c.condition_id}-{u}",
                          "condition_id": c.condition_id, "utt_id": f"u{u}", "noise": c.noise, "snr_db": c.snr_db,
                          "corruption": c.corruption, "snr_definition": "energy", "seed": 0, "status": "ok",
                          "fps": 25.0} for c in expand_conditions(spec.conditions) for u in range(2)])


def _enhance_plan(spec, run_dir: Path):
    from benchmark.runner.context import StageContext
    from benchmark.runner.pipeline import RunOptions, effective_spec
    from benchmark.runner.stages import enhance, train
    from benchmark.runner.store import RunStore

    ctx = StageContext(effective_spec(spec), run_dir, RunOptions(), RunStore(run_dir))
    up = {"corpus": pd.DataFrame([{"corpus_id": "C", "root": "/x"}])}

    def table(jobs):
        return pd.DataFrame([{"label": getattr(j, "model_label", "") or j.label,
                              "train_seed": j.train_seed if isinstance(j, train.TrainJob) else None,
                              "key": j.key, "checkpoint": f"/ck/{j.key}", "status": "ok", "error": ""} for j in jobs])

    w1 = train.plan(ctx, up)
    w2 = train.plan(ctx, up, table(w1))
    up["train"] = table(w1 + [j for j in w2 if j.key not in {x.key for x in w1}])
    up["mix"] = _mix_table(spec)
    return enhance.plan(ctx, up)


def _cells(jobs, model_id: str, algorithm: str) -> set[tuple[str, float, str]]:
    return {(r["noise"], float(r["snr_db"]), r["corruption"]) for j in jobs
            if j.system["model_id"] == model_id and j.algorithm == algorithm for r in j.items}


def test_subsets_restrict_the_planned_enhancement(tmp_path):
    """MCEM on the headline cell only, a composite on -5 dB with LDEM only; every other pair on
    the whole grid; the jobs of an unrestricted pair are the same jobs (same keys) as without
    subsets."""
    base = ["training.seeds=[0]", "enhance.algorithms=[ldem, mcem]"]
    subsets = ("enhance.subsets={mcem: {snrs_db: [-5.0], corruptions: [none]}, "
               "mixture-vae: {snrs_db: [-5.0], algorithms: [ldem]}}")
    plain = _enhance_plan(_study(base), tmp_path / "a")
    sub = _enhance_plan(_study(base + [subsets]), tmp_path / "b")
    grid = {(c.noise, c.snr_db, c.corruption) for c in expand_conditions(_study().conditions)}
    assert _cells(plain, "a-vae", "mcem") == grid
    assert _cells(sub, "a-vae", "mcem") == {g for g in grid if g[1] == -5.0 and g[2] == "none"}
    assert _cells(sub, "a-vae", "ldem") == grid
    assert _cells(sub, "mixture-vae", "ldem") == {g for g in grid if g[1] == -5.0}
    assert _cells(sub, "mixture-vae", "mcem") == set()
    assert _cells(sub, "switching-vae", "mcem") == {g for g in grid if g[1] == -5.0 and g[2] == "none"}
    ldem_keys = {j.key for j in plain if j.algorithm == "ldem" and j.system["model_id"] != "mixture-vae"}
    assert ldem_keys <= {j.key for j in sub}
