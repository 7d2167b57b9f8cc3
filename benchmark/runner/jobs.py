"""Content-hashed jobs: the unit of work of every stage.

A :class:`Job` names its stage, the *inputs* its result depends on (settings, the keys of the
upstream jobs it reads, the stage's code version) and a function to call; the pipeline's stages
use :class:`StageJob`, one frozen dataclass per kind of job whose keyed fields *are* the
function's arguments (minus declared non-semantic ones). Its key is a hash of those inputs, so

* a job that is already done (record present, outputs intact) is never recomputed;
* changing one setting changes the keys of exactly the jobs whose inputs contain it, and of
  the jobs downstream of them (their inputs contain the upstream keys), and nothing else.

:func:`execute_job` runs one job wherever it is sent (this process, a joblib worker, a Dask
worker), isolates its failure (an exception becomes a failure record with the traceback) and
writes its rows and record atomically. :func:`run_jobs` is the scheduler of one stage: it skips
done jobs, reruns failed ones only when asked and only up to ``max_attempts``, and reports.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional, Sequence

import pandas as pd

from benchmark.runner.store import STATUS_DONE, STATUS_FAILED, RunStore, fingerprint
from benchmark.seeding import stable_hash

log = logging.getLogger(__name__)


def canonical(obj: Any) -> str:
    """Canonical JSON of ``obj`` (sorted keys, paths and other objects as strings)."""

    def _default(o: Any) -> Any:
        if isinstance(o, Path):
            return str(o)
        if hasattr(o, "tolist"):
            return o.tolist()
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        return repr(o)

    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default)


def job_key(stage: str, inputs: dict[str, Any]) -> str:
    """``<stage>-<20 hex digits>``: the content hash of a job's inputs."""
    return f"{stage}-{stable_hash(stage, canonical(inputs), length=20)}"


@dataclass
class JobOutput:
    """What a job function returns.

    ``rows``: the table rows it produced (a DataFrame or list of dicts; stored as the job's
    shard of table ``Job.table``); ``outputs``: files it wrote (absolute or run-relative; their
    size and mtime are recorded, and a later run recomputes the job if one changed or vanished);
    ``meta``: small JSON-able facts (e.g. a checkpoint path) kept in the record.
    """

    rows: Optional[pd.DataFrame | list[dict[str, Any]]] = None
    outputs: list[str | os.PathLike] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Job:
    """One unit of work: ``fn(**kwargs)`` whose result depends only on ``inputs``."""

    stage: str
    inputs: dict[str, Any]
    fn: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    table: Optional[str] = None  # where its rows go (default: the stage name)
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            self.key = job_key(self.stage, self.inputs)
        if self.table is None:
            self.table = self.stage

    def describe(self) -> str:
        return f"{self.stage} job {self.label or self.key} ({self.key})"


#: field metadata of a :class:`StageJob` field that is not part of the job's key (an output
#: path derived from the key or the run folder, rows read from an upstream job whose key is a
#: keyed field, ``progress``): ``field(metadata=NOT_KEYED)``
NOT_KEYED = {"keyed": False}
#: field metadata of a keyed :class:`StageJob` field that is not an argument of the job function
#: (the identity of what the job reads, e.g. an upstream job's key; the code version)
NOT_ARG = {"arg": False}


@dataclass(frozen=True, eq=False)
class StageJob:
    """One job of a pipeline stage as one frozen dataclass: its fields are the job function's
    arguments (:attr:`kwargs`) and its key is the hash of those same fields (:attr:`inputs`),
    minus the fields declared ``NOT_KEYED`` and plus those declared ``NOT_ARG`` (``version``,
    the stage's code version, is one of them). There is no second, hand-kept dict of what is
    hashed: a new argument is keyed unless it is declared otherwise.

    Subclasses set the class variables ``stage``, ``fn`` (the top-level job function, a
    ``staticmethod``) and optionally ``table`` (where its rows go; default the stage name).
    The interface is :class:`Job`'s (``key``, ``inputs``, ``fn``, ``kwargs``, ``label``,
    ``table``, ``describe``), so :func:`execute_job` and the executors run either."""

    stage: ClassVar[str] = ""
    fn: ClassVar[Callable[..., Any]]
    table_name: ClassVar[Optional[str]] = None
    #: the stage's code version (:func:`benchmark.codehash.stage_version`)
    version: str = field(default="", kw_only=True, metadata=NOT_ARG)
    label: str = field(default="", kw_only=True, metadata={"keyed": False, "arg": False})

    def _keyed_names(self) -> list[str]:
        """Names of the keyed fields (a subclass may drop more, e.g. a setting without effect)."""
        return [f.name for f in fields(self) if f.metadata.get("keyed", True)]

    @property
    def inputs(self) -> dict[str, Any]:
        """The keyed fields, canonicalised (what the key hashes and the record keeps)."""
        return json.loads(canonical({n: getattr(self, n) for n in self._keyed_names()}))

    @property
    def kwargs(self) -> dict[str, Any]:
        """The job function's arguments: every field not declared ``NOT_ARG``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("arg", True)}

    @functools.cached_property
    def key(self) -> str:
        return job_key(self.stage, self.inputs)

    @property
    def table(self) -> str:
        return self.table_name or self.stage

    def describe(self) -> str:
        return f"{self.stage} job {self.label or self.key} ({self.key})"


def _normalise_output(value: Any) -> JobOutput:
    if isinstance(value, JobOutput):
        return value
    if value is None:
        return JobOutput()
    if isinstance(value, (pd.DataFrame, list)):
        return JobOutput(rows=value)
    if isinstance(value, dict):
        return JobOutput(meta=value)
    raise TypeError(f"a job function must return JobOutput, a DataFrame, a list of rows, a dict or None; got {type(value).__name__}")


def _relative(run_dir: Path, p: str | os.PathLike) -> str:
    path = Path(p)
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)


def base_record(job: Job, attempt: int) -> dict[str, Any]:
    return {
        "key": job.key, "stage": job.stage, "label": job.label, "attempts": attempt,
        "host": socket.gethostname(), "pid": os.getpid(), "inputs": json.loads(canonical(job.inputs)),
    }


def failure_record(job: Job, attempt: int, error: str, tb: str = "", wall_time_s: float = 0.0) -> dict[str, Any]:
    """A failure record for ``job`` (used by executors when the worker itself died)."""
    rec = base_record(job, attempt)
    rec.update(status=STATUS_FAILED, error=error, traceback=tb, wall_time_s=wall_time_s,
               finished_at=time.time(), outputs={}, tables=[], meta={})
    return rec


def execute_job(job: Job, run_dir: str | os.PathLike, attempt: int = 1) -> dict[str, Any]:
    """Run one job, write its shard and record atomically, and return the record.

    Never raises for an error of the job function: the exception becomes a failure record with
    its message and traceback. (The record is written after the shard, so a killed process
    leaves either a complete job or none.)
    """
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    t0 = time.perf_counter()
    try:
        out = _normalise_output(job.fn(**job.kwargs))
        tables: list[str] = []
        if out.rows is not None:
            rows = out.rows if isinstance(out.rows, pd.DataFrame) else pd.DataFrame(list(out.rows))
            store.write_shard(job.table, job.key, rows)
            tables.append(job.table)
        outputs = {}
        for p in out.outputs:
            rel = _relative(run_dir, p)
            outputs[rel] = fingerprint(store.path(rel))
        rec = base_record(job, attempt)
        rec.update(status=STATUS_DONE, error="", traceback="", wall_time_s=time.perf_counter() - t0,
                   finished_at=time.time(), outputs=outputs, tables=tables,
                   meta=json.loads(canonical(out.meta)))
    except Exception as exc:  # noqa: BLE001 - failure isolation is the point
        rec = failure_record(job, attempt, f"{type(exc).__name__}: {exc}", traceback.format_exc(),
                             time.perf_counter() - t0)
    store.write_record(rec)
    return rec


@dataclass
class StageResult:
    """What happened to the jobs of one stage in one call of :func:`run_jobs`."""

    stage: str
    keys: list[str]
    records: dict[str, dict[str, Any]]
    cached: int = 0
    ran: int = 0
    failed: int = 0
    gave_up: int = 0  # failed jobs not retried (no --retry-failed, or max attempts reached)
    wall_time_s: float = 0.0

    @property
    def ok_keys(self) -> list[str]:
        return [k for k in self.keys if self.records.get(k, {}).get("status") == STATUS_DONE]

    @property
    def failed_keys(self) -> list[str]:
        return [k for k in self.keys if self.records.get(k, {}).get("status") != STATUS_DONE]

    def summary(self) -> str:
        return (f"{self.stage}: {len(self.keys)} jobs, {self.cached} cached, {self.ran} run, "
                f"{len(self.failed_keys)} failed ({self.wall_time_s:.1f} s)")


def plan_jobs(jobs: Sequence[Job], store: RunStore, *, retry_failed: bool = False,
              max_attempts: int = 3) -> tuple[list[tuple[Job, int]], dict[str, dict[str, Any]], int, int]:
    """Split jobs into (to run with attempt number), known records, cached count, given-up count."""
    todo: list[tuple[Job, int]] = []
    records: dict[str, dict[str, Any]] = {}
    cached = gave_up = 0
    seen: set[str] = set()
    for job in jobs:
        if job.key in seen:
            raise ValueError(f"duplicate job key {job.key} in stage {job.stage} ({job.label})")
        seen.add(job.key)
        rec = store.read_record(job.stage, job.key)
        if rec is None:
            todo.append((job, 1))
        elif rec.get("status") == STATUS_DONE:
            if store.outputs_intact(rec):
                records[job.key] = rec
                cached += 1
            else:
                log.info("%s: its output files changed or vanished; recomputing", job.describe())
                todo.append((job, int(rec.get("attempts", 0)) + 1))
        else:
            attempts = int(rec.get("attempts", 1))
            if retry_failed and attempts < max_attempts:
                todo.append((job, attempts + 1))
            else:
                if retry_failed:
                    log.warning("%s failed %d times (max_attempts=%d); not retrying", job.describe(),
                                attempts, max_attempts)
                records[job.key] = rec
                gave_up += 1
    return todo, records, cached, gave_up


def run_jobs(jobs: Sequence[Job], run_dir: str | os.PathLike, executor: Any, *, stage: str | None = None,
             retry_failed: bool = False, max_attempts: int = 3, progress: bool = True) -> StageResult:
    """Run the not-yet-done jobs of one stage on ``executor``; return what happened.

    A job that raises is recorded as failed and the others go on. Failed jobs of earlier runs
    are rerun only with ``retry_failed`` and only while they have fewer than ``max_attempts``.
    """
    from tqdm.auto import tqdm

    store = RunStore(run_dir)
    stage = stage or (jobs[0].stage if jobs else "?")
    t0 = time.perf_counter()
    todo, records, cached, gave_up = plan_jobs(jobs, store, retry_failed=retry_failed, max_attempts=max_attempts)
    result = StageResult(stage=stage, keys=[j.key for j in jobs], records=records, cached=cached, gave_up=gave_up)
    if todo:
        log.info("%s: %d job(s) to run, %d cached, %d failed earlier and not retried", stage, len(todo),
                 cached, gave_up)
        bar = tqdm(total=len(todo), desc=stage, unit="job", disable=not progress, leave=False)
        try:
            for rec in executor.run(todo, str(run_dir)):
                result.records[rec["key"]] = rec
                result.ran += 1
                if rec["status"] != STATUS_DONE:
                    result.failed += 1
                    log.error("%s job %s failed: %s", stage, rec.get("label") or rec["key"], rec.get("error"))
                bar.update(1)
        finally:
            bar.close()
    result.wall_time_s = time.perf_counter() - t0
    return result


__all__ = ["Job", "StageJob", "NOT_KEYED", "NOT_ARG", "JobOutput", "StageResult", "canonical", "job_key", "execute_job", "failure_record",
           "plan_jobs", "run_jobs"]
