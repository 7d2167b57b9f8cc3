"""Cache keys follow the code: each stage's code version is a hash of the source files its
results depend on (:mod:`benchmark.codehash`), so editing the EM reruns enhancement and
scoring and nothing else, and ``status`` shows the jobs such an edit has made stale.

The hash covers file bytes: a comment-only edit of a covered file changes it too (and reruns
the stage). That is deliberate (telling comments from code would need a normalising parser and
buys little); the tests below pin it down so that nobody mistakes it for a bug.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import codehash
from benchmark.codehash import (
    HARNESS, NOT_HARNESS, STAGE_ENTRIES, code_hash, module_closure, stage_code, stage_version,
)

REPO = Path(__file__).resolve().parents[1]
SOURCE = ("benchmark", "models", "noise_sets", "run_benchmark.py")


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


@pytest.fixture
def toy_project(tmp_path: Path) -> Path:
    """A tiny tree with the project's package names: ``benchmark.metrics`` imports ``helpers``
    lazily (inside a function), ``helpers`` imports ``deep`` relatively; ``unrelated`` is
    imported by nobody; ``benchmark.report`` (harness) is imported but must not count."""
    write(tmp_path, "benchmark/__init__.py", '"""pkg"""\n')
    write(tmp_path, "benchmark/metrics.py",
          "import numpy as np\n\ndef score(x):\n    from benchmark.helpers import f\n"
          "    from benchmark.report import plots\n    return f(x)\n")
    write(tmp_path, "benchmark/helpers.py", "from .sub.deep import g\n\ndef f(x):\n    return g(x)\n")
    write(tmp_path, "benchmark/sub/__init__.py", "def lazy():\n    from benchmark import unrelated\n")
    write(tmp_path, "benchmark/sub/deep.py", "def g(x):\n    return x + 1\n")
    write(tmp_path, "benchmark/unrelated.py", "X = 1\n")
    write(tmp_path, "benchmark/report/__init__.py", "")
    write(tmp_path, "benchmark/report/plots.py", "Y = 2\n")
    return tmp_path


def rels(root: Path, files: list[Path]) -> set[str]:
    return {p.relative_to(root.resolve()).as_posix() for p in files}


def test_closure_follows_lazy_and_relative_imports_and_skips_the_harness(toy_project):
    files = rels(toy_project, module_closure(["benchmark.metrics"], toy_project))
    assert files == {"benchmark/__init__.py", "benchmark/metrics.py", "benchmark/helpers.py",
                     "benchmark/sub/__init__.py", "benchmark/sub/deep.py"}
    # benchmark/sub is reached only as a parent package: its function-level import is not followed
    assert "benchmark/unrelated.py" not in files
    assert not any(f.startswith("benchmark/report") for f in files)


def test_hash_changes_with_a_transitive_module_and_not_with_an_unrelated_one(toy_project):
    h0 = code_hash(["benchmark.metrics"], toy_project).digest
    (toy_project / "benchmark/unrelated.py").write_text("X = 2\n")
    (toy_project / "benchmark/report/plots.py").write_text("Y = 3\n")
    assert code_hash(["benchmark.metrics"], toy_project).digest == h0
    (toy_project / "benchmark/sub/deep.py").write_text("def g(x):\n    return x + 2\n")
    h1 = code_hash(["benchmark.metrics"], toy_project).digest
    assert h1 != h0
    # a comment-only change changes it too (file bytes are hashed; see the module docstring)
    with open(toy_project / "benchmark/sub/deep.py", "a") as f:
        f.write("# a comment\n")
    assert code_hash(["benchmark.metrics"], toy_project).digest != h1
    # contents, not mtimes: touching a file changes nothing
    h2 = code_hash(["benchmark.metrics"], toy_project).digest
    os.utime(toy_project / "benchmark/sub/deep.py", (1, 1))
    assert code_hash(["benchmark.metrics"], toy_project).digest == h2


def test_a_package_entry_covers_all_its_modules(toy_project):
    files = rels(toy_project, module_closure(["benchmark.sub"], toy_project))
    assert {"benchmark/sub/__init__.py", "benchmark/sub/deep.py"} <= files
    # the entry package's own function-level imports are followed
    assert "benchmark/unrelated.py" in files


def test_stage_files_of_this_repository():
    files = {st: set(stage_code(st).files) for st in STAGE_ENTRIES}
    harness = tuple(h.replace(".", "/") for h in HARNESS)
    for st, fs in files.items():
        assert fs, st
        not_harness = tuple(h.replace(".", "/") for h in NOT_HARNESS)
        # the report/runner/CLI never count, except the stage modules and the weight summaries
        assert not [f for f in fs if f.startswith(harness) and not f.startswith(not_harness)], st
        for h in ("pipeline", "store", "executors", "status", "jobs", "context", "codehash", "provenance"):
            assert f"benchmark/runner/{h}.py" not in fs, (st, h)
        assert all((REPO / f).is_file() for f in fs)
    # each stage module is in its own stage's code (the speech-NMF job has a module of its own)
    for st, fs in files.items():
        mods = {f for f in fs if f.startswith("benchmark/runner/stages/") and not f.endswith("__init__.py")}
        assert mods == {f"benchmark/runner/stages/{st.replace('-', '_')}.py"}, (st, mods)
    assert [st for st, fs in files.items() if "benchmark/report/diagnostics.py" in fs] == ["score"]
    enh = {f for f in files["enhance"] if f.startswith("models/enhancement/")}
    assert {"models/enhancement/em.py", "models/enhancement/api.py", "models/enhancement/ldem.py"} <= enh
    for st in ("corpus", "train", "mix", "score"):  # editing the EM does not rerun these
        assert not [f for f in files[st] if f.startswith("models/enhancement/")], st
    assert "models/training.py" in files["train"] and "models/vae.py" in files["train"]
    assert any(f.startswith("models/fusion/gated") for f in files["train"])
    assert any(f.startswith("noise_sets/") for f in files["mix"])
    assert any(f.startswith("benchmark/metrics") for f in files["score"])
    assert "benchmark/corpus/build.py" in files["corpus"]
    assert stage_version("enhance") == f"{codehash.STAGE_VERSIONS['enhance']}+{stage_code('enhance').digest}"


def copy_source(dest: Path) -> Path:
    """The repository's source (packages and entry script) copied to ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCE:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    return dest


def test_editing_the_enhancement_changes_only_the_enhancement_code_version(tmp_path):
    """Plan-level: in a copy of the source, appending a comment to a module of
    ``models/enhancement/`` changes the enhancement stage's hash (and that of the speech-NMF
    train job, which runs ``models.enhancement.baselines``) and no other stage's."""
    root = copy_source(tmp_path / "src")
    before = {u: code_hash(e, root).digest for u, e in STAGE_ENTRIES.items()}
    assert before == {u: code_hash(e, REPO).digest for u, e in STAGE_ENTRIES.items()}  # same bytes, same hash
    with open(root / "models/enhancement/em.py", "a") as f:
        f.write("\n# edited\n")
    after = {u: code_hash(e, root).digest for u, e in STAGE_ENTRIES.items()}
    changed = {u for u in STAGE_ENTRIES if before[u] != after[u]}
    assert changed == {"enhance", "speech-nmf"}
    # editing the report (other than the diagnostics' weight summaries) changes nothing
    report = root / "benchmark/report/tables.py"
    with open(report, "a") as f:
        f.write("\n# edited\n")
    assert {u: code_hash(e, root).digest for u, e in STAGE_ENTRIES.items()} == after


@pytest.mark.parametrize("rel, units", [
    ("benchmark/runner/stages/enhance.py", {"enhance"}),  # enhance_job and its keys
    ("benchmark/runner/stages/score.py", {"score"}),
    ("benchmark/runner/stages/mix.py", {"mix"}),
    ("benchmark/runner/stages/corpus.py", {"corpus"}),
    ("benchmark/runner/stages/train.py", {"train"}),
    ("benchmark/runner/stages/speech_nmf.py", {"speech-nmf"}),
    ("benchmark/report/diagnostics.py", {"score"}),  # the per-row reliability-weight summaries
    ("benchmark/runner/pipeline.py", set()),  # the harness: pipeline, store, executors, status
    ("benchmark/runner/store.py", set()),
    ("benchmark/runner/executors.py", set()),
    ("benchmark/runner/status.py", set()),
])
def test_editing_a_stage_module_changes_its_own_stage_only(tmp_path, rel, units):
    """A stage's job functions are covered by that stage's code hash (editing ``enhance_job``
    reruns the enhancement), and the diagnostics' weight summaries by the score stage's; the
    pipeline and its bookkeeping by none."""
    root = tmp_path / "src"
    for pkg in ("benchmark", "models", "noise_sets"):
        shutil.copytree(REPO / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    before = {u: code_hash(e, root).digest for u, e in STAGE_ENTRIES.items()}
    with open(root / rel, "a") as f:
        f.write("\n# edited\n")
    after = {u: code_hash(e, root).digest for u, e in STAGE_ENTRIES.items()}
    assert {u for u in STAGE_ENTRIES if before[u] != after[u]} == units


# ---------------------------------------------------------------------------------------------
# status: stale jobs, on a hand-made run folder (no real work)


def make_run(run: Path) -> dict[str, list[str]]:
    """A run folder with done records linked as the pipeline links them: corpus; an A-VAE and an
    AV-VAE initialised from it; 2 mixing jobs; enhancement jobs of both models and of a
    model-free baseline; input-scoring and per-enhancement scoring jobs."""
    from benchmark.runner.jobs import Job
    from benchmark.runner.store import RunStore

    store = RunStore(run)

    def job(stage: str, **inputs) -> str:
        inputs.setdefault("version", stage_version(stage))
        j = Job(stage, inputs, fn=print)
        store.write_record({"key": j.key, "stage": stage, "label": "", "attempts": 1, "status": "done",
                            "inputs": json.loads(json.dumps(inputs)), "wall_time_s": 1.0, "outputs": {},
                            "tables": []})
        return j.key

    keys: dict[str, list[str]] = {}
    keys["corpus"] = [job("corpus", corpus={"name": "synthetic"})]
    avae = job("train", entry="a-vae", corpus="c", init_from=None)
    av = job("train", entry="av-vae", corpus="c", init_from=avae)
    keys["train"] = [avae, av]
    keys["mix"] = [job("mix", utts=[i], corpus="c") for i in range(2)]
    enh = {m: job("enhance", model=k, items=[["i", "m"]]) for m, k in (("a", avae), ("av", av), ("base", None))}
    keys["enhance"] = list(enh.values())
    inp = job("score", what="input", items=[["i", "m"]])
    sc = {m: job("score", enhance=k) for m, k in enh.items()}
    keys["score"] = [inp] + list(sc.values())
    for st, ks in keys.items():
        store.write_plan(st, ks)
    return {"avae": [avae], "av": [av], "inp": [inp], **{f"enh_{m}": [k] for m, k in enh.items()},
            **{f"score_{m}": [k] for m, k in sc.items()}}


def stale_of(run: Path) -> dict[str, tuple[int, int]]:
    from benchmark.runner.status import run_status

    return {s.stage: (s.stale, s.stale_upstream) for s in run_status(run)["stages"]}


def changed_code(monkeypatch, *units: str) -> None:
    """Pretend the code of ``units`` changed since the records were written."""
    import benchmark.runner.status as status

    monkeypatch.setattr(status, "stage_version",
                        lambda unit, root=None: stage_version(unit) + ("-edited" if unit in units else ""))


def test_status_nothing_stale_when_the_code_is_unchanged(tmp_path):
    make_run(tmp_path)
    assert stale_of(tmp_path) == {st: (0, 0) for st in ("corpus", "train", "mix", "enhance", "score")}


def test_status_enhancement_code_changed(tmp_path, monkeypatch):
    from benchmark.runner.status import format_status, run_status

    make_run(tmp_path)
    changed_code(monkeypatch, "enhance")
    # all 3 enhancement jobs stale by their own code; the 3 scoring jobs that read them stale
    # through them; the input scores (which read only the mixtures), corpus, train, mix are not
    assert stale_of(tmp_path) == {"corpus": (0, 0), "train": (0, 0), "mix": (0, 0), "enhance": (3, 0),
                                  "score": (0, 3)}
    st = run_status(tmp_path)
    by = {s.stage: s for s in st["stages"]}
    assert by["enhance"].to_run == 3 and by["score"].to_run == 3 and by["train"].to_run == 0
    text = format_status(st)
    assert "enhance: 3 jobs stale (code changed since they ran)" in text
    assert "score: 3 jobs stale (they read stale jobs of an earlier stage)" in text
    assert "train:" not in text and "mix:" not in text


def test_status_training_code_changed_reaches_the_models_jobs_only(tmp_path, monkeypatch):
    make_run(tmp_path)
    changed_code(monkeypatch, "train")
    # both models retrain; the model-free baseline's enhancement and scoring stay valid
    assert stale_of(tmp_path) == {"corpus": (0, 0), "train": (2, 0), "mix": (0, 0), "enhance": (0, 2),
                                  "score": (0, 2)}


def test_status_stale_av_model_through_its_avae_initialisation(tmp_path, monkeypatch):
    """Only the A-VAE's record has another code version: the AV-VAE initialised from it is stale."""
    from benchmark.runner.store import RunStore

    k = make_run(tmp_path)
    store = RunStore(tmp_path)
    rec = store.read_record("train", k["avae"][0])
    rec["inputs"]["version"] = "0+old"
    store.write_record(rec)
    assert stale_of(tmp_path) == {"corpus": (0, 0), "train": (1, 1), "mix": (0, 0), "enhance": (0, 2),
                                  "score": (0, 2)}


def test_status_mixing_code_changed_reaches_everything_after_it(tmp_path, monkeypatch):
    make_run(tmp_path)
    changed_code(monkeypatch, "mix")
    assert stale_of(tmp_path) == {"corpus": (0, 0), "train": (0, 0), "mix": (2, 0), "enhance": (0, 3),
                                  "score": (0, 4)}


def test_status_json_has_the_stale_counts(tmp_path, monkeypatch, capsys):
    from benchmark.cli import main

    make_run(tmp_path)
    changed_code(monkeypatch, "score")
    assert main(["status", "--out", str(tmp_path), "--json"]) == 0
    st = {s["stage"]: s for s in json.loads(capsys.readouterr().out)["stages"]}
    assert st["score"]["stale"] == 4 and st["score"]["to_run"] == 4 and st["enhance"]["stale"] == 0


def test_run_json_records_the_stage_code(tmp_path):
    from benchmark.runner.provenance import write_run_json

    info = write_run_json(tmp_path, {"name": "x"})
    assert set(info["code"]) == set(STAGE_ENTRIES)
    enh = info["code"]["enhance"]
    assert enh["version"] == stage_version("enhance") and enh["n_files"] == len(enh["files"]) > 0
    assert info["invocations"][-1]["code_versions"]["score"] == stage_version("score")


# ---------------------------------------------------------------------------------------------
# the real thing, in a copy of the source (slow: two reduced runs in subprocesses)


def _in_copy(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "run_benchmark.py", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
def test_editing_the_enhancement_reruns_enhance_and_score_only(tmp_path, tiny_corpus):
    from test_pipeline_e2e import reduced_preset

    root = copy_source(tmp_path / "src")
    probe = subprocess.run([sys.executable, "-c", "import benchmark.codehash as c; print(c.REPO_ROOT)"],
                           cwd=root, env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True, text=True)
    assert Path(probe.stdout.strip()) == root.resolve(), probe.stderr  # the copy is what runs
    preset = reduced_preset(tmp_path, tiny_corpus)
    run = tmp_path / "run"
    args = ("run", "--preset", str(preset), "--out", str(run), "--no-progress", "--no-report")
    first = _in_copy(root, *args)
    assert first.returncode == 0, first.stderr[-3000:]

    def status() -> dict[str, dict]:
        out = _in_copy(root, "status", "--out", str(run), "--json")
        assert out.returncode == 0, out.stderr[-3000:]
        return {s["stage"]: s for s in json.loads(out.stdout)["stages"]}

    st = status()
    assert all(s["stale"] == s["stale_upstream"] == s["pending"] == 0 for s in st.values())
    with open(root / "models/enhancement/api.py", "a") as f:
        f.write("\n# an edit of the enhancement code\n")
    st = status()
    for s in ("corpus", "train", "mix"):
        assert st[s]["to_run"] == 0 and st[s]["done"] == st[s]["planned"] > 0, st[s]
    n_enh = st["enhance"]["planned"]
    assert st["enhance"]["stale"] == n_enh > 0
    assert st["score"]["stale"] == 0 and st["score"]["stale_upstream"] == n_enh  # not the input scores

    second = _in_copy(root, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads((run / "run.json").read_text())["invocations"][-1]["summary"]["stages"]
    assert summary["corpus"]["ran"] == summary["train"]["ran"] == summary["mix"]["ran"] == 0
    assert summary["enhance"]["ran"] == n_enh
    assert summary["score"]["ran"] == n_enh and summary["score"]["cached"] > 0  # input scores reused
    st = status()
    assert all(s["to_run"] == 0 for s in st.values())


def test_status_jobs_without_a_code_version_are_never_stale(tmp_path):
    """Jobs made outside the pipeline (no ``version`` in their inputs) are not counted stale."""
    from benchmark.runner.executors import SerialExecutor
    from benchmark.runner.jobs import Job, run_jobs
    from benchmark.runner.store import RunStore

    jobs = [Job("mix", {"x": i}, lambda x: [{"x": x}], {"x": i}) for i in range(2)]
    RunStore(tmp_path).write_plan("mix", [j.key for j in jobs])
    run_jobs(jobs, tmp_path, SerialExecutor(), progress=False)
    assert stale_of(tmp_path)["mix"] == (0, 0)


def test_a_corpus_code_edit_rebuilds_the_corpus(tmp_path, monkeypatch):
    """The corpus identity (:func:`benchmark.corpus.build.settings_hash`) includes the corpus
    stage's code hash: a corpus built by other corpus code is rebuilt, not reused."""
    from test_corpus_synthetic import MICRO

    from benchmark.corpus.build import corpus_root, ensure_corpus, is_current, settings_hash

    root = ensure_corpus(MICRO, tmp_path / "c", progress=False)
    mtime = (root / "manifest.parquet").stat().st_mtime_ns
    assert ensure_corpus(MICRO, root, progress=False) == root  # same code: reused
    assert (root / "manifest.parquet").stat().st_mtime_ns == mtime
    h0 = settings_hash(MICRO)
    monkeypatch.setenv("AVBENCH_DATA", str(tmp_path / "data"))
    default0 = corpus_root(MICRO)
    real = codehash.stage_code("corpus")
    monkeypatch.setattr(codehash, "stage_code",
                        lambda stage, root=codehash.REPO_ROOT: codehash.CodeHash(stage, "0" * 16, real.files))
    assert settings_hash(MICRO) != h0 and corpus_root(MICRO) != default0  # a new default folder
    assert not is_current(MICRO, root)
    ensure_corpus(MICRO, root, progress=False)
    assert (root / "manifest.parquet").stat().st_mtime_ns != mtime and is_current(MICRO, root)
