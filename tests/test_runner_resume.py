"""Kill and resume, for real: a subprocess running a toy grid is SIGKILLed mid-grid (several
times, at different moments), then rerun; the final table equals an uninterrupted run, with no
lost or duplicated rows and no corrupt files.

Run as a script (``python tests/test_runner_resume.py OUT [JOBS]``) it runs the toy grid.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

N_JOBS_IN_GRID = 40
REPO = Path(__file__).resolve().parents[1]


def grid_job(run_dir: str, i: int):
    """A toy job with a little work, a file output and a row."""
    import numpy as np

    from benchmark.runner.jobs import JobOutput
    from benchmark.runner.store import atomic_write_bytes

    time.sleep(0.04)
    rng = np.random.default_rng(i)
    x = rng.normal(size=2000).astype(np.float32)
    p = Path(run_dir) / "out" / f"{i:03d}.npy"
    atomic_write_bytes(p, x.tobytes())
    return JobOutput(rows=[{"i": i, "mean": float(x.mean()), "std": float(x.std())}], outputs=[p])


def make_jobs(run_dir: Path):
    from benchmark.runner.jobs import Job

    return [Job(stage="grid", inputs={"i": i, "v": 1}, fn=grid_job, kwargs={"run_dir": str(run_dir), "i": i},
                label=str(i)) for i in range(N_JOBS_IN_GRID)]


def main(out: str, n_workers: int = 1) -> int:
    from benchmark.runner.executors import make_executor
    from benchmark.runner.jobs import run_jobs
    from benchmark.runner.store import RunStore, atomic_write_parquet

    run_dir = Path(out)
    store = RunStore(run_dir)
    with store.lock():
        store.clean_temp()
        jobs = make_jobs(run_dir)
        ex = make_executor(jobs=n_workers)
        res = run_jobs(jobs, run_dir, ex, progress=False)
        df = store.read_table("grid", [j.key for j in jobs])
        atomic_write_parquet(run_dir / "results.parquet", df)
    return 1 if res.failed_keys else 0


def _records(run_dir: Path) -> int:
    d = run_dir / "jobs" / "grid"
    return len(list(d.glob("*.json"))) if d.exists() else 0


def _start(run_dir: Path, workers: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, __file__, str(run_dir), str(workers)], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, run_dir: Path, n_records: int, timeout: float = 60.0) -> bool:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        if _records(run_dir) >= n_records:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("grid did not progress")


def test_sigkill_mid_grid_then_resume(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    p = _start(ref, 1)
    assert p.wait(timeout=120) == 0, p.stderr.read().decode()
    expected = pd.read_parquet(ref / "results.parquet").sort_values("i").reset_index(drop=True)
    assert len(expected) == N_JOBS_IN_GRID

    killed = 0
    for n in (3, 11, 23):
        proc = _start(run, 1)
        killed += _kill_when(proc, run, n)
        assert not (run / "results.parquet").exists()
    assert killed == 3  # really interrupted three times mid-grid
    assert 0 < _records(run) < N_JOBS_IN_GRID
    proc = _start(run, 1)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    got = pd.read_parquet(run / "results.parquet").sort_values("i").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)  # nothing lost, nothing duplicated
    assert not list(run.rglob("*.tmp"))
    for rec in (run / "jobs" / "grid").glob("*.json"):
        assert json.loads(rec.read_text())["status"] == "done"  # every record parses
    for i in range(N_JOBS_IN_GRID):
        assert (run / "out" / f"{i:03d}.npy").read_bytes() == (ref / "out" / f"{i:03d}.npy").read_bytes()


def test_sigkill_with_worker_processes_then_resume(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    p = _start(ref, 1)
    assert p.wait(timeout=120) == 0
    proc = _start(run, 2)
    assert _kill_when(proc, run, 15, timeout=90)
    proc = _start(run, 2)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    a = pd.read_parquet(ref / "results.parquet").sort_values("i").reset_index(drop=True)
    b = pd.read_parquet(run / "results.parquet").sort_values("i").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1))
