"""Experiment specs (benchmark.spec) and typed config loading (benchmark.configtools): unknown
keys, wrong types and out-of-range values are errors naming the file and the dotted key."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pytest
import yaml

from benchmark.configtools import ConfigError, FieldError, check_fields, deep_merge, from_dict, set_dotted, to_dict
from benchmark.spec import ExperimentSpec, load_raw, load_spec, parse_overrides, preset_names, spec_from_dict


def _write(path, data):
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_smoke_preset_loads_and_round_trips():
    spec = load_spec("smoke")
    assert isinstance(spec, ExperimentSpec) and spec.name == "smoke"
    assert spec_from_dict(spec.to_dict()) == spec


def test_unknown_key_names_file_and_key(tmp_path):
    p = _write(tmp_path / "exp.yaml", {"extends": "smoke", "corpus": {"n_train_speakerz": 3}})
    with pytest.raises(ConfigError) as ei:
        load_spec(str(p))
    msg = str(ei.value)
    assert str(p) in msg and "unknown key 'corpus.n_train_speakerz'" in msg and "n_train_speakers" in msg
    assert "did you mean 'n_train_speakers'?" in msg
    p = _write(tmp_path / "top.yaml", {"modelz": []})
    with pytest.raises(ConfigError, match=r"top\.yaml: unknown key 'modelz'"):
        load_spec(str(p))


def test_unknown_key_inside_a_list_entry(tmp_path):
    p = _write(tmp_path / "m.yaml", {"models": [{"name": "a-vae"}, {"name": "av-vae", "fusoin": "gated"}]})
    with pytest.raises(ConfigError, match=r"m\.yaml: unknown key 'models\[1\]\.fusoin'"):
        load_spec(str(p))


@pytest.mark.parametrize("override, key, text", [
    ("training.epochs=ten", "training.epochs", "expected an integer"),
    ("training.epochs=2.5", "training.epochs", "expected an integer"),
    ("training.reliability_augmentation=1", "training.reliability_augmentation", "expected true/false"),
    ("conditions.snrs_db=5", "conditions.snrs_db", "expected a list"),
    ("conditions.snrs_db=[0, loud]", "conditions.snrs_db[1]", "expected a number"),
    ("corpus=3", "corpus", "expected a mapping"),
])
def test_wrong_types(override, key, text):
    with pytest.raises(ConfigError) as ei:
        load_spec("smoke", [override])
    assert f"key '{key}'" in str(ei.value) and text in str(ei.value) and "smoke.yaml" in str(ei.value)


@pytest.mark.parametrize("override, key", [
    ("training.epochs=0", "training.epochs"),
    ("conditions.snrs_db=[0, 80]", "conditions.snrs_db"),
    ("report.ci=1.5", "report.ci"),
    ("corpus.lip_size=4", "corpus.lip_size"),
])
def test_out_of_range(override, key):
    with pytest.raises(ConfigError, match=rf"key '{key}': value .* out of range"):
        load_spec("smoke", [override])


def test_choices():
    with pytest.raises(ConfigError, match=r"key 'metrics.pesq_mode': must be one of \['wb', 'nb'\], got 'xb'"):
        load_spec("smoke", ["metrics.pesq_mode=xb"])
    with pytest.raises(ConfigError, match="key 'corpus.sample_rate'"):
        load_spec("smoke", ["corpus.sample_rate=8000"])


def test_set_overrides_parse_yaml_values():
    spec = load_spec("smoke", ["training.epochs=3", "enhance.algorithms=[ldem, peem]", "corpus.skip_bad=true",
                               "conditions.snrs_db=[-5, 0.5]", "conditions.n_utterances=null", "report.reference=table.yaml",
                               "corpus.name=grid", "corpus.options={source: /data/grid, test_speakers: [s1, s2]}"])
    assert spec.training.epochs == 3
    assert spec.enhance.algorithms == ["ldem", "peem"]
    assert spec.corpus.skip_bad is True
    assert spec.conditions.snrs_db == [-5.0, 0.5] and all(isinstance(v, float) for v in spec.conditions.snrs_db)
    assert spec.conditions.n_utterances is None
    assert spec.report.reference == "table.yaml"
    assert spec.corpus.options == {"source": "/data/grid", "test_speakers": ["s1", "s2"]}
    assert spec.models == load_spec("smoke").models  # untouched sections keep the preset's values


def test_set_errors():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["training.epochs"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_overrides(["enhance.algorithms=[ldem"])
    with pytest.raises(ConfigError, match="unknown key 'training.epoch'"):
        load_spec("smoke", ["training.epoch=3"])
    d = {"a": 1}
    with pytest.raises(ConfigError, match="'a' is not a section"):
        set_dotted(d, "a.b", 2)
    assert parse_overrides(["a.b.c=x=y"]) == {"a": {"b": {"c": "x=y"}}}  # only the first '=' splits


def test_extends_chain_with_relative_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "base.yaml", {"extends": "smoke", "name": "base", "training": {"epochs": 7, "lr": 0.001}})
    _write(tmp_path / "sub" / "mid.yaml", {"extends": "../base.yaml", "name": "mid", "training": {"epochs": 5}})
    _write(tmp_path / "sub" / "leaf.yaml", {"extends": "mid.yaml", "name": "leaf", "metrics": {"names": ["si_sdr"]}})
    spec = load_spec(str(tmp_path / "sub" / "leaf.yaml"))
    assert spec.name == "leaf"
    assert spec.training.epochs == 5 and spec.training.lr == 0.001  # mid overrides base key by key
    assert spec.metrics.names == ["si_sdr"]
    assert spec.corpus == load_spec("smoke").corpus  # from the root of the chain
    raw, src = load_raw(str(tmp_path / "sub" / "leaf.yaml"))
    assert "extends" not in raw and src.endswith("leaf.yaml")


def test_extends_errors(tmp_path):
    _write(tmp_path / "a.yaml", {"extends": "b.yaml"})
    _write(tmp_path / "b.yaml", {"extends": "a.yaml"})
    with pytest.raises(ConfigError, match="circular 'extends' chain"):
        load_spec(str(tmp_path / "a.yaml"))
    _write(tmp_path / "c.yaml", {"extends": "no-such-preset"})
    with pytest.raises(ConfigError, match="unknown preset 'no-such-preset'; known: .*smoke"):
        load_spec(str(tmp_path / "c.yaml"))
    _write(tmp_path / "d.yaml", {"extends": 3})
    with pytest.raises(ConfigError, match=r"d\.yaml: key 'extends'"):
        load_spec(str(tmp_path / "d.yaml"))
    _write(tmp_path / "e.yaml", "corpus: [unclosed\n")
    with pytest.raises(ConfigError, match=r"e\.yaml: invalid YAML"):
        load_spec(str(tmp_path / "e.yaml"))
    _write(tmp_path / "f.yaml", "- just\n- a list\n")
    with pytest.raises(ConfigError, match=r"f\.yaml: a preset must be a mapping"):
        load_spec(str(tmp_path / "f.yaml"))


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError) as ei:
        load_spec("smokey")
    assert "unknown preset 'smokey'" in str(ei.value)
    for name in preset_names():
        assert name in str(ei.value)
    with pytest.raises(ConfigError, match="preset file not found"):
        load_spec("/nonexistent/x.yaml")


# -- configtools on its own ------------------------------------------------------------------


@dataclass
class _Inner:
    k: int = field(default=1, metadata={"range": (0, 10)})


@dataclass
class _Outer:
    mode: str = field(default="a", metadata={"choices": ("a", "b")})
    opt: Optional[float] = None
    pair: tuple[int, str] = (1, "x")
    inner: _Inner = field(default_factory=_Inner)
    table: dict[str, int] = field(default_factory=dict)


def test_from_dict_types_and_paths():
    o = from_dict(_Outer, {"opt": 2, "pair": [3, "y"], "inner": {"k": 4}, "table": {"x": 1}}, source="t.yaml")
    assert o.opt == 2.0 and isinstance(o.opt, float) and o.pair == (3, "y") and o.inner.k == 4
    assert to_dict(o) == {"mode": "a", "opt": 2.0, "pair": [3, "y"], "inner": {"k": 4}, "table": {"x": 1}}
    with pytest.raises(ConfigError, match=r"t\.yaml: key 'inner\.k': value 11 out of range \[0, 10\]"):
        from_dict(_Outer, {"inner": {"k": 11}}, source="t.yaml")
    with pytest.raises(ConfigError, match=r"key 'pair': expected 2 items, got 3"):
        from_dict(_Outer, {"pair": [1, "a", 2]}, source="t.yaml")
    with pytest.raises(ConfigError, match=r"key 'table\.x': expected an integer"):
        from_dict(_Outer, {"table": {"x": "one"}}, source="t.yaml")
    with pytest.raises(ConfigError, match=r"key 'opt': expected"):
        from_dict(_Outer, {"opt": "high"}, source="t.yaml")
    with pytest.raises(ConfigError, match=r"unknown key 'inner\.j'"):
        from_dict(_Outer, {"inner": {"j": 1}}, source="t.yaml")


@dataclass
class _Checked:
    """A config class that checks itself (as the algorithm and model configs do)."""

    steps: int = field(default=4, metadata={"range": (1, None)})
    burn: int = 2
    mode: str = field(default="a", metadata={"choices": ("a", "b")})

    def __post_init__(self) -> None:
        check_fields(self)
        if self.burn >= self.steps:
            raise FieldError(type(self).__name__, "burn", f"{self.burn} must be smaller than steps ({self.steps})")


def test_check_fields_and_field_errors_under_the_full_key():
    import numpy as np

    assert _Checked(steps=np.int64(3)).steps == 3
    with pytest.raises(FieldError, match=r"_Checked\.steps: value 0 out of range \[1, None\]"):
        _Checked(steps=0)
    with pytest.raises(FieldError, match=r"_Checked\.steps: expected int, got str"):
        _Checked(steps="3")
    with pytest.raises(FieldError, match=r"_Checked\.mode: must be one of \['a', 'b'\]"):
        _Checked(mode="c")
    with pytest.raises(ConfigError, match=r"t\.yaml: key 'outer\.inner\.burn': 5 must be smaller than steps \(4\)"):
        from_dict(_Checked, {"burn": 5}, source="t.yaml", prefix="outer.inner")
    with pytest.raises(ConfigError, match=r"t\.yaml: unknown key 'x\.stpes'; did you mean 'steps'\?"):
        from_dict(_Checked, {"stpes": 5}, source="t.yaml", prefix="x")


def test_deep_merge_is_recursive_and_pure():
    base = {"a": {"x": 1, "y": 2}, "b": [1, 2]}
    out = deep_merge(base, {"a": {"y": 3}, "b": [9]})
    assert out == {"a": {"x": 1, "y": 3}, "b": [9]} and base == {"a": {"x": 1, "y": 2}, "b": [1, 2]}
