"""Where jobs run: in this process, in joblib worker processes, or on a Dask cluster.

Every executor has one method, ``run(todo, run_dir) -> iterator of job records`` (in completion
order), where ``todo`` is a list of ``(Job, attempt)``. The job itself writes its outputs and
record (see :func:`benchmark.runner.jobs.execute_job`), so the run folder must be visible to the
workers: always true locally; on a cluster it must be on a shared file system.

If a worker *process* dies (out-of-memory kill, segfault), the jobs it held get a failure
record saying so; ``--retry-failed`` runs them again.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from benchmark.runner.jobs import Job, execute_job, failure_record
from benchmark.runner.store import RunStore

log = logging.getLogger(__name__)

Todo = Sequence[tuple[Job, int]]


def _record_crash(job: Job, attempt: int, run_dir: str, exc: BaseException) -> dict[str, Any]:
    """The record of a job whose worker died: keep a record the job wrote itself, if any."""
    store = RunStore(run_dir)
    rec = store.read_record(job.stage, job.key)
    if rec is not None and rec.get("attempts") == attempt:
        return rec
    rec = failure_record(job, attempt, f"worker died while running this job ({type(exc).__name__}: {exc})")
    store.write_record(rec)
    return rec


class SerialExecutor:
    """Run jobs one after the other in this process."""

    name = "serial"
    n_workers = 1

    def run(self, todo: Todo, run_dir: str) -> Iterator[dict[str, Any]]:
        for job, attempt in todo:
            yield execute_job(job, run_dir, attempt)

    def close(self) -> None:
        pass


class JoblibExecutor:
    """Run jobs in ``n_jobs`` joblib (loky) worker processes, yielding records as they finish."""

    name = "joblib"

    def __init__(self, n_jobs: int = 2) -> None:
        self.n_workers = int(n_jobs)

    def run(self, todo: Todo, run_dir: str) -> Iterator[dict[str, Any]]:
        from joblib import Parallel, delayed

        if self.n_workers <= 1 or len(todo) <= 1:
            yield from SerialExecutor().run(todo, run_dir)
            return
        done: set[str] = set()
        try:
            gen = Parallel(n_jobs=self.n_workers, backend="loky", return_as="generator_unordered")(
                delayed(execute_job)(job, run_dir, attempt) for job, attempt in todo)
            for rec in gen:
                done.add(rec["key"])
                yield rec
        except Exception as exc:  # a worker died: the pool is broken, account for the rest
            log.error("joblib worker pool failed (%s: %s); recording the unfinished jobs", type(exc).__name__, exc)
            for job, attempt in todo:
                if job.key not in done:
                    yield _record_crash(job, attempt, run_dir, exc)

    def close(self) -> None:
        pass


class DaskExecutor:
    """Send jobs to a Dask distributed cluster: an existing scheduler or a local one.

    ``address``: ``tcp://host:port`` of a running scheduler; otherwise a
    ``distributed.LocalCluster`` of ``n_workers`` single-threaded worker processes bound to the
    loopback interface is started (and closed by :meth:`close`).
    """

    name = "dask"

    def __init__(self, address: Optional[str] = None, n_workers: int = 2) -> None:
        from distributed import Client, LocalCluster

        self._cluster = None
        if address:
            self.client = Client(address)
        else:
            self._cluster = LocalCluster(n_workers=int(n_workers), threads_per_worker=1, processes=True,
                                         host="127.0.0.1", dashboard_address=None, silence_logs=logging.WARNING)
            self.client = Client(self._cluster)
        self.n_workers = max(1, len(self.client.scheduler_info().get("workers", {})) or int(n_workers))
        log.info("dask: %s with %d worker(s)", address or "LocalCluster", self.n_workers)

    def run(self, todo: Todo, run_dir: str) -> Iterator[dict[str, Any]]:
        from distributed import as_completed

        run_dir = str(Path(run_dir).resolve())
        futures = {}
        for job, attempt in todo:
            fut = self.client.submit(execute_job, job, run_dir, attempt, pure=False, retries=0,
                                     key=f"{job.key}-a{attempt}-{os.urandom(4).hex()}")
            futures[fut] = (job, attempt)
        for fut in as_completed(list(futures)):
            job, attempt = futures[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # KilledWorker, lost connection, ...
                rec = _record_crash(job, attempt, run_dir, exc)
            fut.release()
            yield rec

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


def make_executor(*, jobs: int = 1, dask_local: int = 0, scheduler: Optional[str] = None) -> Any:
    """The executor the options ask for: Dask (scheduler or local cluster), joblib, or serial."""
    if scheduler:
        return DaskExecutor(address=scheduler)
    if dask_local and dask_local > 0:
        return DaskExecutor(n_workers=dask_local)
    if jobs and jobs > 1:
        return JoblibExecutor(jobs)
    return SerialExecutor()


__all__ = ["SerialExecutor", "JoblibExecutor", "DaskExecutor", "make_executor"]
