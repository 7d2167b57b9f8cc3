"""What ``status`` shows: done / pending / failed jobs per stage, with counts and an ETA, and
which done jobs a code change has made stale.

It reads the run folder (``plan.json``, the job records and ``run.json``), so it works while a
run is going on in another process, after it was killed, or after it finished; and the source
of this checkout, for the stale jobs: a done job is *stale* when the code version its key
hashed (``inputs.version`` of its record) is not the stage's current
:func:`~benchmark.codehash.stage_version` (its own code changed), or when it read a stale
job of an earlier stage (a training job whose A-VAE initialisation is stale; an enhancement job
whose model is stale, or any when the mixing is stale; a scoring job whose enhancement job is
stale, or an input-scoring job when the mixing is stale). The next ``run`` gives stale jobs new
keys and runs them. A stale corpus job is not propagated: the corpus identity includes the
corpus code hash, so the next run rebuilds the corpus (:func:`benchmark.corpus.build.settings_hash`),
but the stages after it are keyed by the corpus checksum, so they rerun only if the rebuilt
corpus differs.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from benchmark.codehash import REPO_ROOT, code_unit, stage_version
from benchmark.runner.store import STATUS_DONE, RunStore

log = logging.getLogger(__name__)

STAGE_ORDER = ("corpus", "train", "mix", "enhance", "score")


@dataclass
class StageStatus:
    stage: str
    planned: Optional[int]  # None: not planned yet (needs an earlier stage)
    done: int
    failed: int
    mean_job_s: Optional[float]
    #: done jobs whose own stage code changed since they ran (None: the code could not be hashed)
    stale: Optional[int] = 0
    #: other done jobs that read a stale job of an earlier stage
    stale_upstream: Optional[int] = 0

    @property
    def pending(self) -> Optional[int]:
        return None if self.planned is None else max(0, self.planned - self.done - self.failed)

    @property
    def to_run(self) -> Optional[int]:
        """Jobs the next ``run`` will run: pending plus stale (failed ones only with --retry-failed)."""
        if self.pending is None:
            return None
        return self.pending + (self.stale or 0) + (self.stale_upstream or 0)


def _keys_of(value: Any) -> Iterable[Any]:
    """Upstream job keys in a record's inputs (one key, a dict of them, or None)."""
    if isinstance(value, dict):
        return list(value.values())
    return [value] if value else []


def stale_jobs(done: dict[str, dict[str, dict[str, Any]]],
               root: Path = REPO_ROOT) -> dict[str, tuple[set[str], set[str]]]:
    """Per stage, (stale done jobs by their own code, other done jobs stale through an earlier
    stage) among ``done`` (stage -> key -> record); see the module docstring for the links."""
    own: dict[str, set[str]] = {}
    for st, recs in done.items():
        own[st] = set()
        for k, r in recs.items():
            inputs = r.get("inputs") or {}
            # a record without a code version is not a pipeline job (e.g. a hand-made grid)
            if "version" in inputs and inputs["version"] != stage_version(code_unit(st, inputs), root):
                own[st].add(k)
    stale = {st: set(keys) for st, keys in own.items()}
    train = done.get("train", {})
    grew = True
    while grew:  # AV models initialised from a stale A-VAE
        grew = False
        for k, r in train.items():
            if k not in stale["train"] and (r.get("inputs") or {}).get("init_from") in stale["train"]:
                stale["train"].add(k)
                grew = True
    mix_stale = bool(stale.get("mix"))
    for k, r in done.get("enhance", {}).items():
        if mix_stale or any(m in stale["train"] for m in _keys_of((r.get("inputs") or {}).get("model"))):
            stale["enhance"].add(k)
    for k, r in done.get("score", {}).items():
        inputs = r.get("inputs") or {}
        if (mix_stale and inputs.get("what") == "input") or inputs.get("enhance") in stale["enhance"]:
            stale["score"].add(k)
    return {st: (own[st], stale[st] - own[st]) for st in done}


def _workers(run_dir: Path) -> int:
    try:
        info = json.loads((run_dir / "run.json").read_text())
        opts = info["invocations"][-1].get("options", {})
    except (FileNotFoundError, ValueError, KeyError, IndexError):
        return 1
    return max(1, int(opts.get("dask_local") or 0), int(opts.get("jobs") or 1))


def _train_seeds(run_dir: Path) -> Optional[list[int]]:
    """The training seeds ``run.json`` records (None: unknown)."""
    try:
        seeds = json.loads((run_dir / "run.json").read_text()).get("train_seeds")
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    return [int(s) for s in seeds] if isinstance(seeds, list) else None


def run_status(run_dir: str | Path) -> dict[str, Any]:
    """Per-stage counts, the run lock holder and an ETA (seconds, for the planned stages)."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    plan = store.read_plan()
    stages = []
    done_recs: dict[str, dict[str, dict[str, Any]]] = {}
    for st in STAGE_ORDER:
        recs = store.records(st)
        keys = plan.get(st, {}).get("keys")
        if keys is not None:
            recs = {k: r for k, r in recs.items() if k in set(keys)}
        done_recs[st] = {k: r for k, r in recs.items() if r.get("status") == STATUS_DONE}
        done = list(done_recs[st].values())
        failed = [r for r in recs.values() if r.get("status") != STATUS_DONE]
        times = [float(r.get("wall_time_s") or 0.0) for r in done]
        stages.append(StageStatus(st, None if keys is None else len(keys), len(done), len(failed),
                                  (sum(times) / len(times)) if times else None))
    try:
        stale = stale_jobs(done_recs)
    except (OSError, SyntaxError, ValueError) as exc:  # e.g. a source file being edited
        log.warning("cannot hash the stage code (%s: %s); stale jobs not shown", type(exc).__name__, exc)
        stale = None
    for s in stages:
        s.stale, s.stale_upstream = (None, None) if stale is None else (len(stale[s.stage][0]), len(stale[s.stage][1]))
    workers = _workers(run_dir)
    eta = 0.0
    unknown = False
    for s in stages:
        if s.pending is None:
            unknown = True
        elif s.to_run:
            if s.mean_job_s is None:
                unknown = True
            else:
                eta += s.to_run * s.mean_job_s / (1 if s.stage in ("corpus",) else workers)
    return {
        "run_dir": str(run_dir), "exists": run_dir.exists(), "running": store.is_locked(), "workers": workers,
        "stages": stages, "eta_s": eta, "eta_partial": unknown,
        "results": (run_dir / "results.parquet").exists(), "train_seeds": _train_seeds(run_dir),
    }


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def format_status(st: dict[str, Any]) -> str:
    """A small text table of :func:`run_status`."""
    lines = [f"run folder: {st['run_dir']}" + ("" if st["exists"] else " (does not exist)")]
    lines.append(f"state: {'RUNNING (' + st['running'] + ')' if st['running'] else 'not running'}")
    if st.get("train_seeds"):
        n = len(st["train_seeds"])
        lines.append(f"training seeds: {', '.join(map(str, st['train_seeds']))}"
                     + (f" (every trained model trained {n} times)" if n > 1 else ""))
    lines.append(f"{'stage':<9} {'planned':>8} {'done':>6} {'pending':>8} {'failed':>7} {'stale':>6} {'s/job':>7}")
    for s in st["stages"]:
        planned = "-" if s.planned is None else str(s.planned)
        pending = "?" if s.pending is None else str(s.pending)
        stale = "?" if s.stale is None else str(s.stale + (s.stale_upstream or 0))
        mean = "-" if s.mean_job_s is None else f"{s.mean_job_s:.2f}"
        lines.append(f"{s.stage:<9} {planned:>8} {s.done:>6} {pending:>8} {s.failed:>7} {stale:>6} {mean:>7}")
    for s in st["stages"]:
        if s.stale:
            what = "job" if s.stale == 1 else "jobs"
            note = "; the stages after it follow the corpus checksum" if s.stage == "corpus" else ""
            lines.append(f"{s.stage}: {s.stale} {what} stale (code changed since they ran){note}")
        if s.stale_upstream:
            what = "job" if s.stale_upstream == 1 else "jobs"
            lines.append(f"{s.stage}: {s.stale_upstream} {what} stale (they read stale jobs of an earlier stage)")
    if any(s.stale is None for s in st["stages"]):
        lines.append("stale jobs: unknown (the stage code could not be hashed)")
    elif any(s.stale or s.stale_upstream for s in st["stages"]):
        lines.append("stale jobs get new keys and run again at the next run")
    eta = _fmt_s(st["eta_s"])
    if st["eta_partial"]:
        eta = f">= {eta} (stages not planned yet or without timings are not counted)"
    lines.append(f"ETA with {st['workers']} worker(s): {eta}")
    if any(s.failed for s in st["stages"]):
        lines.append("failed jobs: see failures.csv (after the run) or jobs/<stage>/*.json; rerun with --retry-failed")
    if st["results"]:
        lines.append("results: results.parquet / results.csv")
    return "\n".join(lines)


__all__ = ["run_status", "format_status", "stale_jobs", "StageStatus"]
