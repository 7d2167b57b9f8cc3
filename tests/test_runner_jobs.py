"""The job machinery on toy jobs: content keys, caching, atomic outputs, failure isolation,
retries, and equivalence of the serial, joblib and Dask executors."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.runner.executors import JoblibExecutor, SerialExecutor, make_executor
from benchmark.runner.jobs import NOT_KEYED, Job, JobOutput, StageJob, job_key, run_jobs
from benchmark.runner.store import RunStore, atomic_write_text


def toy_square(run_dir: str, x: int, fail: bool = False, sleep: float = 0.0, salt: str = "") -> JobOutput:
    """A toy job: writes a file and returns one row; raises when told to."""
    if sleep:
        time.sleep(sleep)
    if fail:
        raise ValueError(f"toy failure on x={x}")
    rng = np.random.default_rng(x)
    p = Path(run_dir) / "out" / f"{x}.txt"
    atomic_write_text(p, f"{x * x}{salt}")
    return JobOutput(rows=[{"x": x, "y": x * x, "noise": float(rng.normal()), "pid": os.getpid()}], outputs=[p])


def toy_jobs(run_dir: Path, xs, fail=(), sleep=0.0, version="1") -> list[Job]:
    return [Job(stage="toy", inputs={"x": x, "version": version}, fn=toy_square,
                kwargs={"run_dir": str(run_dir), "x": x, "fail": x in fail, "sleep": sleep}, label=f"x={x}")
            for x in xs]


def table(run_dir: Path, jobs) -> pd.DataFrame:
    df = RunStore(run_dir).read_table("toy", [j.key for j in jobs])
    return df.drop(columns=["pid"]).sort_values("x").reset_index(drop=True)


def test_key_is_content_hash():
    a = job_key("mix", {"snr": 0.0, "utt": "u1", "version": "1"})
    assert a == job_key("mix", {"version": "1", "utt": "u1", "snr": 0.0})  # order-free
    assert a != job_key("mix", {"snr": 5.0, "utt": "u1", "version": "1"})
    assert a != job_key("mix", {"snr": 0.0, "utt": "u1", "version": "2"})  # code version counts
    assert a != job_key("score", {"snr": 0.0, "utt": "u1", "version": "1"})
    assert a.startswith("mix-")


def test_done_jobs_are_never_recomputed(tmp_path):
    jobs = toy_jobs(tmp_path, range(5))
    r1 = run_jobs(jobs, tmp_path, SerialExecutor(), progress=False)
    assert (r1.ran, r1.cached, r1.failed) == (5, 0, 0)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    r2 = run_jobs(jobs, tmp_path, SerialExecutor(), progress=False)
    assert (r2.ran, r2.cached) == (0, 5)
    assert mtimes == {p: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    # one changed setting recomputes exactly the job that depends on it
    jobs2 = toy_jobs(tmp_path, range(5))
    jobs2[2] = Job(stage="toy", inputs={"x": 2, "version": "1", "salt": "!"}, fn=toy_square,
                   kwargs={"run_dir": str(tmp_path), "x": 2, "salt": "!"})
    r3 = run_jobs(jobs2, tmp_path, SerialExecutor(), progress=False)
    assert (r3.ran, r3.cached) == (1, 4)
    assert (tmp_path / "out" / "2.txt").read_text() == "4!"
    # a vanished or modified output makes its job run again
    (tmp_path / "out" / "3.txt").unlink()
    r4 = run_jobs(jobs2, tmp_path, SerialExecutor(), progress=False)
    assert (r4.ran, r4.cached) == (1, 4)
    assert len(table(tmp_path, jobs2)) == 5  # no duplicated rows


def test_failure_isolation_and_retry(tmp_path):
    jobs = toy_jobs(tmp_path, range(6), fail={1, 4})
    r = run_jobs(jobs, tmp_path, SerialExecutor(), progress=False)
    assert r.ran == 6 and r.failed == 2 and sorted(r.failed_keys) == sorted([jobs[1].key, jobs[4].key])
    rec = RunStore(tmp_path).read_record("toy", jobs[1].key)
    assert rec["status"] == "failed" and "toy failure on x=1" in rec["error"]
    assert "Traceback" in rec["traceback"] and "toy_square" in rec["traceback"]
    assert len(table(tmp_path, jobs)) == 4  # the others went on
    # without --retry-failed nothing is rerun
    r2 = run_jobs(jobs, tmp_path, SerialExecutor(), progress=False)
    assert r2.ran == 0 and r2.gave_up == 2 and len(r2.failed_keys) == 2
    # with retry: only the failed ones run; a fixed job succeeds, a still-broken one fails again
    jobs[1].kwargs["fail"] = False  # same key: e.g. a transient problem went away
    r3 = run_jobs(jobs, tmp_path, SerialExecutor(), retry_failed=True, max_attempts=3, progress=False)
    assert r3.ran == 2 and r3.failed == 1 and r3.cached == 4
    assert RunStore(tmp_path).read_record("toy", jobs[4].key)["attempts"] == 2
    r4 = run_jobs(jobs, tmp_path, SerialExecutor(), retry_failed=True, max_attempts=3, progress=False)
    assert r4.ran == 1
    # no infinite retries: after max_attempts the job is left failed
    r5 = run_jobs(jobs, tmp_path, SerialExecutor(), retry_failed=True, max_attempts=3, progress=False)
    assert r5.ran == 0 and r5.gave_up == 1
    assert RunStore(tmp_path).read_record("toy", jobs[4].key)["attempts"] == 3
    assert len(table(tmp_path, jobs)) == 5


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_text(p, "old")
    from benchmark.runner.store import atomic_path

    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("killed")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["a.json"]


def test_stale_temp_files_are_cleaned(tmp_path):
    (tmp_path / "jobs" / "toy").mkdir(parents=True)
    (tmp_path / "jobs" / "toy" / ".toy-x.json.abc.tmp").write_text("{")
    assert RunStore(tmp_path).clean_temp() == 1


def test_lock_refuses_second_runner(tmp_path):
    from benchmark.runner.store import RunLockedError

    store = RunStore(tmp_path)
    with store.lock():
        assert "pid" in (store.is_locked() or "")
        with pytest.raises(RunLockedError):
            with RunStore(tmp_path).lock():
                pass
    assert store.is_locked() is None


def test_joblib_equals_serial(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ja, jb = toy_jobs(a, range(8), fail={3}), toy_jobs(b, range(8), fail={3})
    ra = run_jobs(ja, a, SerialExecutor(), progress=False)
    rb = run_jobs(jb, b, JoblibExecutor(2), progress=False)
    assert ra.failed == rb.failed == 1
    pd.testing.assert_frame_equal(table(a, ja), table(b, jb))
    pids = set(RunStore(b).read_table("toy")["pid"])
    assert os.getpid() not in pids  # really ran in worker processes


def test_dask_local_cluster_equals_serial(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ja, jb = toy_jobs(a, range(6), fail={2}), toy_jobs(b, range(6), fail={2})
    run_jobs(ja, a, SerialExecutor(), progress=False)
    ex = make_executor(dask_local=2)
    try:
        rb = run_jobs(jb, b, ex, progress=False)
    finally:
        ex.close()
    assert rb.failed == 1 and "toy failure" in rb.records[jb[2].key]["error"]
    pd.testing.assert_frame_equal(table(a, ja), table(b, jb))
    rec = json.loads(RunStore(b).record_path("toy", jb[0].key).read_text())
    assert rec["pid"] != os.getpid()


# ---------------------------------------------------------------------------------------------
# StageJob: the key is computed from the job's own fields


def test_stage_job_key_is_its_keyed_fields():
    """One dataclass: the key hashes every field the function receives except the declared
    NOT_KEYED ones, plus the NOT_ARG identity fields; a new field is keyed unless declared."""
    from benchmark.runner.stages.mix import MixJob

    base = dict(corpus="c1", utt_ids=("u1",), condition={"noise": "white", "snr_db": 0.0}, noise_options={},
                run_dir="/runs/a", corpus_root="/data/c", utts=({"utt_id": "u1", "path": "x.wav"},), version="1+abc")
    j = MixJob(**base, label="one")
    assert set(j.inputs) == {"corpus", "utt_ids", "condition", "noise_options", "version"}
    assert set(j.kwargs) == {"run_dir", "corpus_root", "utts", "condition", "noise_options"}
    # paths and rows fixed by the keyed fields, and the label, do not change the key ...
    assert MixJob(**dict(base, run_dir="/runs/b", corpus_root="/else", utts=()), label="two").key == j.key
    # ... every keyed field does
    for k, v in (("corpus", "c2"), ("utt_ids", ("u2",)), ("noise_options", {"root": "/n"}), ("version", "2+abc"),
                 ("condition", {"noise": "white", "snr_db": 5.0})):
        assert MixJob(**dict(base, **{k: v})).key != j.key, k
    assert j.key.startswith("mix-") and j.table == "mix"


def test_enhance_job_frame_budget_is_keyed_only_on_a_gpu():
    from benchmark.runner.stages.enhance import EnhanceJob

    kw = dict(mix_ids=(("i", "m"),), model="train-k", system={"model_id": "a-vae", "model": "a-vae", "fusion": None},
              algorithm="ldem", params={}, nmf_rank=4, device="cpu", frame_budget=100, seed=0, version="1+x")
    a, b = EnhanceJob(**kw), EnhanceJob(**dict(kw, frame_budget=200))
    assert a.key == b.key and "frame_budget" not in a.inputs and a.kwargs["frame_budget"] == 100
    c, d = EnhanceJob(**dict(kw, device="cuda")), EnhanceJob(**dict(kw, device="cuda", frame_budget=200))
    assert c.key != d.key and c.inputs["frame_budget"] == 100
    # checkpoint paths are not keyed (the model's train-job key is); the composite's params are
    assert EnhanceJob(**kw, checkpoint="/a/ckpt.pt").key == EnhanceJob(**kw, checkpoint="/b/ckpt.pt").key == a.key
    assert EnhanceJob(**kw, model_params={"prior_av": 0.3}).key != a.key


def test_stage_job_runs_through_the_executors(tmp_path):
    """A StageJob has the Job interface: it runs, records its keyed inputs, and is cached."""
    jobs = [ToyStageJob(x=i, out=str(tmp_path / f"o{i}")) for i in range(3)]
    r = run_jobs(jobs, tmp_path, JoblibExecutor(2), progress=False)
    assert r.ran == 3 and not r.failed_keys
    rec = RunStore(tmp_path).read_record("toy", jobs[0].key)
    assert rec["inputs"] == {"x": 0, "version": ""} and rec["stage"] == "toy"
    assert list(RunStore(tmp_path).read_table("toy", [jobs[2].key])["y"]) == [4]
    again = run_jobs([ToyStageJob(x=i, out="elsewhere") for i in range(3)], tmp_path, SerialExecutor(), progress=False)
    assert again.cached == 3 and again.ran == 0


def _toy_fn(x: int, out: str) -> list[dict]:
    return [{"y": 2 * x}]


@dataclass(frozen=True, eq=False)
class ToyStageJob(StageJob):
    """A module-level StageJob (picklable for the joblib workers)."""

    stage = "toy"
    fn = staticmethod(_toy_fn)
    x: int
    out: str = field(default="", metadata=NOT_KEYED)
