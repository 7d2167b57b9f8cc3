"""What ``status`` shows: done / pending / failed jobs per stage, with counts and an ETA.

It reads only the run folder (``plan.json``, the job records and ``run.json``), so it works
while a run is going on in another process, after it was killed, or after it finished.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from benchmark.runner.store import STATUS_DONE, RunStore

STAGE_ORDER = ("corpus", "train", "mix", "enhance", "score")


@dataclass
class StageStatus:
    stage: str
    planned: Optional[int]  # None: not planned yet (needs an earlier stage)
    done: int
    failed: int
    mean_job_s: Optional[float]

    @property
    def pending(self) -> Optional[int]:
        return None if self.planned is None else max(0, self.planned - self.done - self.failed)


def _workers(run_dir: Path) -> int:
    try:
        info = json.loads((run_dir / "run.json").read_text())
        opts = info["invocations"][-1].get("options", {})
    except (FileNotFoundError, ValueError, KeyError, IndexError):
        return 1
    return max(1, int(opts.get("dask_local") or 0), int(opts.get("jobs") or 1))


def run_status(run_dir: str | Path) -> dict[str, Any]:
    """Per-stage counts, the run lock holder and an ETA (seconds, for the planned stages)."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    plan = store.read_plan()
    stages = []
    for st in STAGE_ORDER:
        recs = store.records(st)
        keys = plan.get(st, {}).get("keys")
        if keys is not None:
            recs = {k: r for k, r in recs.items() if k in set(keys)}
        done = [r for r in recs.values() if r.get("status") == STATUS_DONE]
        failed = [r for r in recs.values() if r.get("status") != STATUS_DONE]
        times = [float(r.get("wall_time_s") or 0.0) for r in done]
        stages.append(StageStatus(st, None if keys is None else len(keys), len(done), len(failed),
                                  (sum(times) / len(times)) if times else None))
    workers = _workers(run_dir)
    eta = 0.0
    unknown = False
    for s in stages:
        if s.pending is None:
            unknown = True
        elif s.pending:
            if s.mean_job_s is None:
                unknown = True
            else:
                eta += s.pending * s.mean_job_s / (1 if s.stage in ("corpus",) else workers)
    return {
        "run_dir": str(run_dir), "exists": run_dir.exists(), "running": store.is_locked(), "workers": workers,
        "stages": stages, "eta_s": eta, "eta_partial": unknown,
        "results": (run_dir / "results.parquet").exists(),
    }


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def format_status(st: dict[str, Any]) -> str:
    """A small text table of :func:`run_status`."""
    lines = [f"run folder: {st['run_dir']}" + ("" if st["exists"] else " (does not exist)")]
    lines.append(f"state: {'RUNNING (' + st['running'] + ')' if st['running'] else 'not running'}")
    lines.append(f"{'stage':<9} {'planned':>8} {'done':>6} {'pending':>8} {'failed':>7} {'s/job':>7}")
    for s in st["stages"]:
        planned = "-" if s.planned is None else str(s.planned)
        pending = "?" if s.pending is None else str(s.pending)
        mean = "-" if s.mean_job_s is None else f"{s.mean_job_s:.2f}"
        lines.append(f"{s.stage:<9} {planned:>8} {s.done:>6} {pending:>8} {s.failed:>7} {mean:>7}")
    eta = _fmt_s(st["eta_s"])
    if st["eta_partial"]:
        eta = f">= {eta} (stages not planned yet or without timings are not counted)"
    lines.append(f"ETA with {st['workers']} worker(s): {eta}")
    if any(s.failed for s in st["stages"]):
        lines.append("failed jobs: see failures.csv (after the run) or jobs/<stage>/*.json; rerun with --retry-failed")
    if st["results"]:
        lines.append("results: results.parquet / results.csv")
    return "\n".join(lines)


__all__ = ["run_status", "format_status", "StageStatus"]
