"""Registries discover their package, so a new fusion / algorithm / noise / corruption / metric is
one new file: the ``Registry(package=, base=)`` contract on a throw-away package, the real
registries' packages, and the code blocks of ``docs/extending.md`` written into a temporary copy
of the project and used from a subprocess (listed; the fusion trained and used by ``enhance()``
with the new algorithm), so the page cannot rot."""
from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "extending.md"
# what the doc's examples register, by family (as `run_benchmark.py list` titles them)
DOC_NAMES = {"fusions": "frame-gate", "algorithms": "encoder-em", "noises": "hum", "corruptions": "low-contrast",
             "metrics": "snr"}


def doc_files() -> dict[str, str]:
    """``{relative path: code}`` of the doc's code blocks marked ``<!-- file: PATH -->``."""
    return dict(re.findall(r"<!-- file: (\S+) -->\s*```python\n(.*?)```", DOC.read_text(), re.S))


# ---------------------------------------------------------------------------------------------
# the Registry contract on a throw-away package


@pytest.fixture
def plugin_pkg(tmp_path, monkeypatch):
    """A package ``plugpkg`` with modules a, z (register), _hidden and base (must not be imported)."""
    pkg = tmp_path / "plugpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from benchmark.registry import Registry\nORDER = []\n"
                                     "THINGS = Registry('thing', package='plugpkg', base=int)\n")
    for name in ("z", "a"):
        (pkg / f"{name}.py").write_text(f"from plugpkg import ORDER, THINGS\nORDER.append({name!r})\n"
                                        f"THINGS.register({name!r}, {ord(name)})\n")
    (pkg / "_hidden.py").write_text("raise RuntimeError('a _private module must not be imported')\n")
    (pkg / "base.py").write_text("raise RuntimeError('base must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("plugpkg")
    for mod in [m for m in sys.modules if m == "plugpkg" or m.startswith("plugpkg.")]:
        del sys.modules[mod]


def test_package_registry_imports_every_public_module_in_name_order(plugin_pkg):
    assert plugin_pkg.ORDER == []  # nothing imported before the first lookup
    assert plugin_pkg.THINGS.names() == ["a", "z"]
    assert plugin_pkg.ORDER == ["a", "z"]
    assert plugin_pkg.THINGS.package_modules() == ("plugpkg.a", "plugpkg.z")


def test_base_check_is_a_type_error_naming_the_module(plugin_pkg, tmp_path):
    (tmp_path / "plugpkg" / "bad.py").write_text("from plugpkg import THINGS\nTHINGS.register('bad', 'not an int')\n")
    with pytest.raises(TypeError, match=r"thing 'bad' registered in module 'plugpkg.bad' is 'str', not a int"):
        plugin_pkg.THINGS.names()


def test_base_may_be_a_dotted_path_or_a_protocol():
    from models.enhancement.registry import Algorithm

    r = Registry("fusion", base="models.fusion.base.Fusion")
    with pytest.raises(TypeError, match="not a Fusion"):
        r.register("x", dict)
    from models.fusion.base import Fusion

    class Mine(Fusion):
        name = "mine"

    assert r.register("mine", Mine) is Mine
    algos = Registry("algorithm", base=Algorithm)
    with pytest.raises(TypeError, match="is 'object', not a Algorithm"):
        algos.register("x", object)


# ---------------------------------------------------------------------------------------------
# the real registries


def test_every_fusion_module_registers_its_fusion_classes():
    """A fusion file that forgets to register would silently be missing from every run."""
    from models.fusion.base import Fusion
    from models.registry import FUSIONS

    registered = {cls for _, cls in FUSIONS.items()}
    for modname in FUSIONS.package_modules():
        mod = importlib.import_module(modname)
        own = {c for _, c in inspect.getmembers(mod, inspect.isclass)
               if issubclass(c, Fusion) and c.__module__ == modname and not inspect.isabstract(c)}
        assert own, f"{modname} defines no Fusion subclass"
        assert own <= registered, f"{modname}: {sorted(c.__name__ for c in own - registered)} not registered"


def test_every_algorithm_module_is_discovered():
    from models.enhancement.registry import ALGORITHMS

    mods = {ALGORITHMS.get(n).__module__ for n in ALGORITHMS.names()}
    assert mods <= set(ALGORITHMS.package_modules())
    assert {"mcem", "vem", "peem", "ldem", "noisy", "oracle-wiener", "nmf-only"} <= set(ALGORITHMS.names())


# ---------------------------------------------------------------------------------------------
# the doc's examples in a temporary copy of the project


def _project_copy(dst: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("models", "benchmark", "noise_sets"):
        shutil.copytree(ROOT / d, dst / d, ignore=ignore)
    shutil.copy2(ROOT / "run_benchmark.py", dst / "run_benchmark.py")
    for rel, code in doc_files().items():
        target = dst / rel
        assert target.parent.is_dir(), f"docs/extending.md writes into a folder that does not exist: {rel}"
        assert not target.exists(), f"docs/extending.md example would overwrite {rel}"
        target.write_text(code)
    return dst


def _run(cwd: Path, *args: str, timeout: float = 120) -> str:
    env = dict(os.environ, PYTHONPATH=str(cwd), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    res = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{args[:2]} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def test_doc_examples_cover_every_family_and_are_new():
    files = doc_files()
    assert {Path(p).parts[0] for p in files} == {"models", "noise_sets", "benchmark"}
    assert len(files) == len(DOC_NAMES)
    for rel in files:
        assert not (ROOT / rel).exists(), f"{rel} exists in the project: the doc example must be a new file"


def test_new_files_from_the_doc_are_listed(tmp_path):
    copy = _project_copy(tmp_path / "proj")
    out = _run(copy, "run_benchmark.py", "list")
    sections = re.split(r"^(\w[\w -]*) \(\d+\):$", out, flags=re.M)
    listed = {sections[i]: sections[i + 1] for i in range(1, len(sections) - 1, 2)}
    for family, name in DOC_NAMES.items():
        assert re.search(rf"^  {re.escape(name)}\s", listed[family], re.M), f"{name} not listed under {family}:\n{out}"
    assert "frame-gate" in listed["fusions"] and "params" in listed["fusions"].split("frame-gate")[1].splitlines()[0]


TRAIN_AND_ENHANCE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    sys.path.append(sys.argv[1])  # the repository's tests/ (toy corpus builder), after the copy
    import models
    from benchmark.conditions.corruptions import CORRUPTIONS
    from benchmark.metrics import METRICS
    from benchmark.spec import ModelEntry, TrainingSpec
    from models.enhancement.api import EnhanceInput, enhance
    from models.enhancement.toy import synth_utterance
    from models.training import load_training_data, train_model
    from noise_sets import NOISES
    from test_training_toycorpus import FPS, LIP, build_toy_corpus

    out = {"models_file": models.__file__}
    work = Path(sys.argv[2])
    root = build_toy_corpus(work / "corpus", n_train=2, n_val=1, utts=3)
    data = load_training_data(root, LIP, progress=False)
    spec = TrainingSpec(epochs=2, lr=3e-3, batch_size=16, seq_len=32, patience=3, reliability_augmentation=False)
    ckpt = train_model(ModelEntry("av-vae", "frame-gate", params={"lip_size": LIP}), spec, root, work / "av",
                       data=data, progress=False)
    model = models.load(ckpt)
    out["fusion"] = type(model.fusion_enc).__name__
    out["curves"] = len((work / "av" / "curves.csv").read_text().splitlines()) - 1

    rng = np.random.default_rng(0)
    clean, lips, _ = synth_utterance(rng, duration_s=1.0, fps=FPS, lip_size=LIP)
    hum = NOISES.get("hum")().segment(len(clean), seed=0, split="test")
    mixture = (clean + hum * np.std(clean) / np.std(hum)).astype(np.float32)
    (res,) = enhance(model, "encoder-em", [EnhanceInput("u0", mixture, lips, FPS)], params={"n_iter": 5},
                     progress=False)
    out["error"] = res.error
    out["n_samples"] = [len(res.estimate), len(mixture)]
    out["finite"] = bool(np.isfinite(res.estimate).all())
    out["weights_shape"] = list(res.traces["weights_encoder"].shape)
    out["cost"] = [float(c) for c in res.traces["cost"]]
    snr = METRICS.get("snr")
    out["snr"] = [snr.fn(clean, mixture), snr.fn(clean, res.estimate)]
    frames, level = CORRUPTIONS.get("low-contrast")(lips, 0.5, np.random.default_rng(0), fraction=0.5)
    out["corrupted"] = [int((level > 0).sum()), len(level), int((frames != lips).any(axis=(1, 2)).sum())]
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.usefixtures("one_torch_thread")
def test_doc_fusion_trains_and_enhances_with_the_doc_algorithm(tmp_path):
    copy = _project_copy(tmp_path / "proj")
    stdout = _run(copy, "-c", TRAIN_AND_ENHANCE, str(ROOT / "tests"), str(tmp_path / "work"), timeout=300)
    res = json.loads(stdout.split("RESULT ", 1)[1])
    assert Path(res["models_file"]).is_relative_to(copy), "the subprocess must import the copy"
    assert res["fusion"] == "FrameGateFusion" and res["curves"] >= 1
    assert res["error"] is None and res["finite"] and res["n_samples"][0] == res["n_samples"][1]
    assert res["weights_shape"][1] == 2 and len(res["cost"]) == 5
    assert res["cost"][-1] <= res["cost"][0], "the EM cost should not increase over the iterations"
    assert all(v == v for v in res["snr"])  # not NaN
    n_changed, n, n_differ = res["corrupted"]
    assert 0 < n_changed < n and n_differ == n_changed
