"""Run every stage of an experiment: corpus -> train -> mix -> enhance -> score -> report.

Resumable: every unit of work is a content-hashed job, so rerunning the same command after a
crash or a kill (even SIGKILL) finishes the grid without recomputing finished jobs. Failed jobs
are recorded (see failures.csv) and the run exits with status 1; ``--retry-failed`` reruns just
those (at most ``--max-attempts`` times in all).

The report goes to ``reports/<name of the --out folder>/`` (relative to the current directory,
as ``report runs/NAME`` writes ``reports/NAME/``), or to ``--report-dir``.

Examples::

    python run_benchmark.py run --preset smoke --out runs/smoke --jobs 2    # report: reports/smoke/
    python run_benchmark.py run --preset paper-table --limit 4 --dask-local 2
    python run_benchmark.py run --preset full --scheduler tcp://10.0.0.5:8786 --out /shared/runs/full
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from benchmark.cli import add_spec_arguments

NAME = "run"
HELP = "run all stages of a preset (resumable, cached, parallel; local or Dask)"

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_spec_arguments(p)
    p.add_argument("--jobs", type=int, default=None, help="joblib worker processes (default: runner.jobs)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dask-local", type=int, default=None, metavar="N",
                   help="start a local Dask cluster (distributed.LocalCluster) with N worker processes")
    g.add_argument("--scheduler", default=None, metavar="ADDR", help="address of a Dask scheduler, tcp://host:port")
    p.add_argument("--retry-failed", action="store_true", help="rerun the jobs that failed in earlier runs")
    p.add_argument("--max-attempts", type=int, default=3, help="give up on a job after this many attempts (default 3)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use at most N test utterances")
    p.add_argument("--no-report", action="store_true", help="skip the report stage")
    p.add_argument("--report-dir", default=None, metavar="DIR",
                   help="where the report goes (default: reports/<name of the --out folder>, like `report runs/NAME`)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from benchmark.runner.pipeline import RunOptions, run_pipeline
    from benchmark.runner.store import RunLockedError
    from benchmark.spec import load_spec

    overrides = list(args.overrides)
    if args.limit is not None:
        overrides.append(f"runner.limit={args.limit}")
    spec = load_spec(args.preset, overrides)
    r = spec.runner
    jobs = args.jobs if args.jobs is not None else r.jobs
    dask_local = args.dask_local if args.dask_local is not None else r.dask_local
    scheduler = args.scheduler or r.scheduler
    if r.executor == "dask" and not dask_local and not scheduler:
        dask_local = max(1, jobs)  # runner.executor: dask without an address: a local cluster
    elif r.executor == "serial" and args.jobs is None:
        jobs = 1
    out = Path(args.out or f"runs/{spec.name}")
    opts = RunOptions(jobs=jobs, dask_local=dask_local if not scheduler else 0, scheduler=scheduler,
                      retry_failed=args.retry_failed, max_attempts=args.max_attempts, progress=not args.no_progress,
                      report=not args.no_report, report_dir=args.report_dir, preset=args.preset)
    try:
        summary = run_pipeline(spec, out, opts)
    except RunLockedError as exc:
        log.error("%s", exc)
        return 3
    print(summary.text())
    return 0 if summary.ok else 1
