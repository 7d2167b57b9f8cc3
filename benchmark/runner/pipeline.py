"""The stages in order: corpus -> train -> mix -> enhance -> score -> results (-> report).

:func:`run_pipeline` runs the stage modules of :mod:`benchmark.runner.stages` in order: each
plans its content-hashed jobs from the tables of the stages before it, this module runs them on
the chosen executor (and the stage's later waves), and the stage collects its table, failures
included as status rows. The products:

* ``results.parquet`` / ``results.csv``: one row per (utterance, condition, model, algorithm),
  with the metric, ``input_*`` and ``delta_*`` columns, timings, reliability-weight summaries,
  ``external`` (True for an outside system's rows) and ``status``/``error`` (rows of failed
  items are kept, with NaN metrics and the reason);
* ``mixtures.parquet`` and ``enhanced.parquet`` (the intermediate tables), ``failures.parquet``
  (one row per failed job, with error and traceback) and ``run.json``.

Job granularity: the corpus is one job; one training job per model entry (A-VAEs first, then
the AV models that initialise from them); mixing in chunks of utterances per condition;
enhancement in batches per (model, algorithm, condition; all conditions together on a GPU) so
``enhance()`` sees many inputs at once; scoring: one job per chunk of items for the unprocessed
mixtures' ``input_*`` scores (computed once per item, table ``score_input``), then one job per
enhancement job that reuses them. A job's key hashes its settings, the keys (or content checksums) of what it reads, and
the stage code version, so a change of one setting reruns only what depends on it.

The report (``RunOptions.report``) goes to ``RunOptions.report_dir``, by default
``reports/<run folder name>/`` relative to the current directory (as ``report runs/NAME``).
The stage subcommands (``mix``, ``train``, ``enhance``, ``score --preset``) call
:func:`run_stages` with the stage they stop at, so they run (and reuse) exactly ``run``'s jobs.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from benchmark.codehash import STAGE_VERSIONS, stage_version  # noqa: F401 (re-exported)
from benchmark.runner.context import StageContext, trained
from benchmark.runner.executors import SerialExecutor, make_executor
from benchmark.runner.jobs import StageResult, run_jobs
from benchmark.runner.provenance import finish_run_json, write_run_json
from benchmark.runner.stages import ORDER as STAGES
from benchmark.runner.store import STATUS_DONE, RunStore, atomic_write_csv, atomic_write_parquet
from benchmark.schema import OPTIONAL_ID_COLUMNS, RESULT_ID_COLUMNS, STATUS_OK
from benchmark.spec import ExperimentSpec

log = logging.getLogger(__name__)

#: each job's key hashes its stage's ``stage_version``: the runner's own version of the stage's
#: job wiring (``STAGE_VERSIONS``) plus the hash of the source files the stage's results depend
#: on, its own stage module included (:mod:`benchmark.codehash`), so editing that code
#: reruns the stage and what follows.


@dataclass
class RunOptions:
    """How to run (not what: that is the spec)."""

    jobs: int = 1
    dask_local: int = 0
    scheduler: Optional[str] = None
    retry_failed: bool = False
    max_attempts: int = 3
    progress: bool = True
    report: bool = True
    #: where the report goes; None: ``reports/<run folder name>`` relative to the current
    #: directory (the convention of ``report runs/NAME``, which writes ``reports/NAME/``)
    report_dir: Optional[str] = None
    #: an existing corpus root to use instead of building/locating the spec's corpus (its
    #: checksum stands for it in the job keys, so the same corpus gives the same keys)
    corpus_root: Optional[str] = None
    #: stages whose jobs are recomputed even if done (e.g. ``("train",)`` for ``train --force``)
    force: tuple[str, ...] = ()
    mix_chunk: int = 16  # utterances per mixing job
    enhance_chunk: int = 64  # utterances per enhancement job (enhance() packs them by frame budget)
    preset: str = ""


@dataclass
class RunSummary:
    """What a call of :func:`run_pipeline` did."""

    run_dir: Path
    stages: dict[str, StageResult] = field(default_factory=dict)
    n_rows: int = 0
    n_failed_rows: int = 0
    wall_time_s: float = 0.0
    report_path: Optional[str] = None

    @property
    def failed_jobs(self) -> int:
        return sum(len(r.failed_keys) for r in self.stages.values())

    @property
    def ok(self) -> bool:
        return self.failed_jobs == 0 and self.n_failed_rows == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "stages": {s: {"jobs": len(r.keys), "cached": r.cached, "ran": r.ran, "failed": len(r.failed_keys),
                           "wall_time_s": round(r.wall_time_s, 3)} for s, r in self.stages.items()},
            "rows": self.n_rows, "failed_rows": self.n_failed_rows, "wall_time_s": round(self.wall_time_s, 3),
            "report": self.report_path,
        }

    def text(self) -> str:
        lines = [f"run folder: {self.run_dir}"]
        lines += ["  " + r.summary() for r in self.stages.values()]
        lines.append(f"  results: {self.n_rows} rows, {self.n_failed_rows} failed; total {self.wall_time_s:.1f} s")
        if self.report_path:
            lines.append(f"  report: {self.report_path}")
        if not self.ok:
            lines.append("  FAILURES: see failures.csv; rerun with --retry-failed to run the failed jobs again")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# helpers


def _asdict(obj: Any) -> dict[str, Any]:
    from benchmark.configtools import to_dict

    return to_dict(obj)


def effective_spec(spec: ExperimentSpec) -> ExperimentSpec:
    """Apply ``runner.limit`` (number of test utterances) to the conditions section."""
    lim = spec.runner.limit
    if lim is None:
        return spec
    n = spec.conditions.n_utterances
    cond = dataclasses.replace(spec.conditions, n_utterances=lim if n is None else min(n, lim))
    return dataclasses.replace(spec, conditions=cond)


def _check_labels(spec: ExperimentSpec) -> None:
    from benchmark.configtools import ConfigError

    labels = [m.label for m in spec.models]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise ConfigError(f"models: duplicate model label(s) {dup}; give each entry a distinct 'id'")


def _stage_module(stage: str) -> Any:
    return importlib.import_module(f"benchmark.runner.stages.{stage}")


def finish_results(df: pd.DataFrame) -> pd.DataFrame:
    """The score stage's table as the results table: one row per (item, model, algorithm[,
    training seed]), the identity columns first, sorted."""
    if df.empty:
        return df
    ids = ["item_id", "model_id", "algorithm"] + [c for c in OPTIONAL_ID_COLUMNS if c in df]  # + train_seed
    df = df.drop_duplicates(subset=ids, keep="first")
    df = df.assign(external=df["model"] == "external")  # outside systems (spec: name: external)
    front = [c for c in RESULT_ID_COLUMNS + OPTIONAL_ID_COLUMNS if c in df]
    df = df[front + [c for c in df.columns if c not in front]]
    return df.sort_values(ids, kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# the stages in order


class Pipeline:
    """One run of the stages on one run folder (use :func:`run_pipeline`)."""

    def __init__(self, spec: ExperimentSpec, run_dir: Path, opts: RunOptions, executor: Any) -> None:
        self.spec = effective_spec(spec)
        self.run_dir = Path(run_dir).resolve()
        self.opts = opts
        self.executor = executor
        self.store = RunStore(self.run_dir)
        self.summary = RunSummary(run_dir=self.run_dir)
        self.ctx = StageContext(self.spec, self.run_dir, opts, self.store)

    def _run(self, stage: str, jobs: list[Any], executor: Any) -> StageResult:
        if stage in self.opts.force:
            for j in jobs:
                rec = self.store.record_path(j.stage, j.key)
                if rec.exists():
                    log.info("%s: recomputing (forced)", j.describe())
                    rec.unlink()
        return run_jobs(jobs, self.run_dir, executor, stage=stage, retry_failed=self.opts.retry_failed,
                        max_attempts=self.opts.max_attempts, progress=self.opts.progress)

    def stage(self, stage: str, upstream: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """Plan, run and collect one stage (in waves while its ``plan`` finds new keys)."""
        mod = _stage_module(stage)
        serial = bool(getattr(mod, "serial", lambda ctx: False)(self.ctx))
        executor = SerialExecutor() if serial else self.executor
        jobs: list[Any] = []
        total = StageResult(stage, [], {})
        table = None
        planned: set[str] = set()
        while True:
            new = [j for j in mod.plan(self.ctx, upstream, table) if j.key not in planned]
            if table is not None and not new:
                break
            jobs += new
            planned.update(j.key for j in new)
            res = self._run(stage, new, executor)
            total.keys += res.keys
            total.records.update(res.records)
            total.cached += res.cached
            total.ran += res.ran
            total.failed += res.failed
            total.gave_up += res.gave_up
            total.wall_time_s += res.wall_time_s
            self.store.write_plan(stage, total.keys)
            table = mod.collect(self.ctx, jobs, total, upstream)
        self.summary.stages[stage] = total
        log.info(total.summary())
        return table

    def failures(self) -> pd.DataFrame:
        rows = []
        for stage, res in self.summary.stages.items():
            for k in res.failed_keys:
                rec = res.records.get(k, {})
                rows.append({"stage": stage, "key": k, "label": rec.get("label", ""), "attempts": rec.get("attempts"),
                             "error": rec.get("error", ""), "traceback": rec.get("traceback", "")})
        df = pd.DataFrame(rows, columns=["stage", "key", "label", "attempts", "error", "traceback"])
        atomic_write_parquet(self.run_dir / "failures.parquet", df)
        atomic_write_csv(self.run_dir / "failures.csv", df)
        return df

    # -- report ------------------------------------------------------------------------------
    def report_dir(self) -> Path:
        """``RunOptions.report_dir``, else ``reports/<run folder name>`` (relative to the cwd)."""
        return Path(self.opts.report_dir) if self.opts.report_dir else Path("reports") / self.run_dir.name

    def report(self) -> Optional[str]:
        """Write the report (:func:`benchmark.report.api.write_report`) into :meth:`report_dir`;
        a failing report is recorded as a failed ``report`` stage, the results stay."""
        try:
            from benchmark.report.api import write_report
        except ImportError as exc:
            log.info("no report module (%s); skipping the report", exc)
            return None
        t0 = time.perf_counter()
        try:
            out = write_report(self.run_dir, self.report_dir(), self.spec, progress=self.opts.progress)
        except Exception as exc:  # noqa: BLE001 - the results are safe; report the problem
            log.error("report failed: %s: %s", type(exc).__name__, exc)
            self.summary.stages["report"] = StageResult("report", ["report"], {"report": {
                "status": "failed", "error": f"{type(exc).__name__}: {exc}"}}, ran=1, failed=1,
                wall_time_s=time.perf_counter() - t0)
            return None
        self.summary.stages["report"] = StageResult("report", ["report"], {"report": {"status": STATUS_DONE}}, ran=1,
                                                    wall_time_s=time.perf_counter() - t0)
        return str(out) if out is not None else None

    # -- all ---------------------------------------------------------------------------------
    def run_until(self, until: str = "results") -> dict[str, Any]:
        """Run the stages needed for ``until`` (a stage of :data:`STAGES` or ``"results"``),
        with exactly the jobs (and keys) of a full run, so a later ``run`` reuses them.

        Returns what was produced: ``tables`` (stage -> its table), ``corpus_root``,
        ``corpus_id``, ``trained`` (label -> checkpoint/key of the successful trainings),
        ``mixtures`` and ``results``, as far as they were made. ``mix`` needs no training;
        ``train`` needs no mixing."""
        if until not in STAGES + ("results",):
            raise ValueError(f"run_until: unknown stage {until!r} (one of {STAGES + ('results',)})")
        _check_labels(self.spec)
        tables: dict[str, pd.DataFrame] = {}
        out: dict[str, Any] = {"tables": tables}
        order = STAGES[:STAGES.index(until) + 1] if until in STAGES else STAGES
        for stage in order:
            if stage == "train" and until == "mix":
                continue
            tables[stage] = self.stage(stage, tables)
        corpus = tables["corpus"].iloc[0]
        out["corpus_root"], out["corpus_id"] = Path(corpus["root"]), str(corpus["corpus_id"])
        if "train" in tables:
            out["trained"] = trained(tables["train"])
        if "mix" in tables:
            out["mixtures"] = tables["mix"]
        if "score" in tables:  # the score stage's table is the results table
            res = finish_results(tables["score"])
            if len(res):
                atomic_write_parquet(self.run_dir / "results.parquet", res)
                atomic_write_csv(self.run_dir / "results.csv", res)
            self.failures()
            self.summary.n_rows = int(len(res))
            self.summary.n_failed_rows = int((res["status"] != STATUS_OK).sum()) if len(res) else 0
            out["results"] = res
        return out

    def run(self) -> RunSummary:
        t0 = time.perf_counter()
        self.run_until("results")
        if self.opts.report:
            self.summary.report_path = self.report()
        self.summary.wall_time_s = time.perf_counter() - t0
        return self.summary


def run_stages(spec: ExperimentSpec, run_dir: str | os.PathLike, until: str,
               opts: Optional[RunOptions] = None) -> tuple[RunSummary, dict[str, Any]]:
    """Run the stages of ``spec`` needed for ``until`` in ``run_dir`` (locked, resumable, the same
    cached jobs as :func:`run_pipeline`): what the stage subcommands (``mix``, ``train``,
    ``enhance``, ``score``) call. Returns the summary and :meth:`Pipeline.run_until`'s dict."""
    opts = opts or RunOptions(report=False)
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    with store.lock():
        store.clean_temp()
        write_run_json(run_dir, _asdict(effective_spec(spec)), preset=opts.preset,
                       options=dict(dataclasses.asdict(opts), stage=until))
        executor = make_executor(jobs=opts.jobs, dask_local=opts.dask_local, scheduler=opts.scheduler)
        t0 = time.perf_counter()
        try:
            p = Pipeline(spec, run_dir, opts, executor)
            produced = p.run_until(until)
        finally:
            executor.close()
        p.summary.wall_time_s = time.perf_counter() - t0
        finish_run_json(run_dir, p.summary.as_dict())
    return p.summary, produced


def run_pipeline(spec: ExperimentSpec, run_dir: str | os.PathLike, opts: Optional[RunOptions] = None) -> RunSummary:
    """Run (or resume) every stage of ``spec`` in ``run_dir``; see the module docstring."""
    opts = opts or RunOptions()
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    with store.lock():
        store.clean_temp()
        write_run_json(run_dir, _asdict(effective_spec(spec)), preset=opts.preset, options=dataclasses.asdict(opts))
        executor = make_executor(jobs=opts.jobs, dask_local=opts.dask_local, scheduler=opts.scheduler)
        try:
            summary = Pipeline(spec, run_dir, opts, executor).run()
        finally:
            executor.close()
        finish_run_json(run_dir, summary.as_dict())
    return summary


__all__ = ["RunOptions", "RunSummary", "Pipeline", "run_pipeline", "run_stages", "effective_spec", "stage_version",
           "STAGES"]
