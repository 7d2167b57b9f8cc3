"""Core helpers: the registry, seeding and the CLI spine."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import COMMANDS, build_parser, main
from benchmark.registry import Registry
from benchmark.seeding import derive_seed, rng, stable_hash

ROOT = Path(__file__).resolve().parents[1]


def test_registry_register_get_and_unknown_name_lists_known():
    r = Registry("widget")
    r.register("alpha", 1, doc="first")
    r.register("beta", 2)
    assert r.get("alpha") == 1 and r.names() == ["alpha", "beta"] and r.doc("alpha") == "first"
    with pytest.raises(KeyError, match=r"unknown widget 'alpah' \(did you mean 'alpha'\?\); known: alpha, beta"):
        r.get("alpah")


def test_registry_rejects_duplicate_names():
    r = Registry("widget")
    r.register("a", object())
    with pytest.raises(ValueError, match="duplicate widget name 'a'"):
        r.register("a", object())


def test_registry_imports_its_modules_lazily_and_retries_after_failure():
    r = Registry("thing", modules=("benchmark.does_not_exist",))
    with pytest.raises(ModuleNotFoundError):
        r.names()
    with pytest.raises(ModuleNotFoundError):  # still not marked loaded after a failure
        r.names()


def test_seeds_are_stable_and_distinct():
    assert derive_seed(0, "utt1", "cond") == derive_seed(0, "utt1", "cond")
    assert derive_seed(0, "utt1", "cond") != derive_seed(0, "utt2", "cond")
    a = rng(1, "x").standard_normal(4)
    b = rng(1, "x").standard_normal(4)
    np.testing.assert_array_equal(a, b)
    # a value computed in another process is the same (no hash randomisation)
    code = "from benchmark.seeding import derive_seed; print(derive_seed(0, 'utt1', 'cond'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert int(out.stdout) == derive_seed(0, "utt1", "cond")
    assert len(stable_hash("a")) == 16


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    parser = build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args([command, "--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_list_prints_every_family(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for title in ("corpora", "noises", "corruptions", "models", "fusions", "algorithms", "metrics", "presets"):
        assert f"{title} (" in out, out
    assert "unavailable" not in out, out


def test_yaml_numbers_in_exponent_form_are_floats():
    from benchmark.spec import load_spec

    spec = load_spec("smoke", ["training.lr=1e-3", "conditions.snrs_db=[-5, 1e1]"])
    assert spec.training.lr == 0.001 and spec.conditions.snrs_db == [-5.0, 10.0]


def test_torch_threads_from_env_and_restored(monkeypatch):
    import torch

    from benchmark.threads import threads_from_env, torch_threads

    before = torch.get_num_threads()
    monkeypatch.setenv("AVBENCH_TEST_THREADS", "nonsense")
    assert threads_from_env("AVBENCH_TEST_THREADS") == 1
    monkeypatch.setenv("AVBENCH_TEST_THREADS", "0")
    assert threads_from_env("AVBENCH_TEST_THREADS") == 1
    monkeypatch.delenv("AVBENCH_TEST_THREADS")
    with torch_threads("AVBENCH_TEST_THREADS") as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
