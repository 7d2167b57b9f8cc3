"""Show the state of a run folder: done / pending / failed jobs per stage, with counts and an
ETA (from the mean time of the finished jobs of each stage and the number of workers), and the
done jobs a code change has made stale (their stage's code hash, or that of an earlier stage
they read, differs from this checkout's; see :mod:`benchmark.runner.status`).

Works while the run is going on (in another terminal), after a kill, or after it finished.
"""
from __future__ import annotations

import argparse
import json

NAME = "status"
HELP = "show done/pending/failed/stale jobs per stage of a run folder, with an ETA"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="run folder (e.g. runs/smoke)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from benchmark.runner.status import format_status, run_status

    st = run_status(args.out)
    if args.json:
        st = dict(st, stages=[dict(asdict(s), pending=s.pending, to_run=s.to_run) for s in st["stages"]])
        print(json.dumps(st, indent=2))
    else:
        print(format_status(st))
    return 0 if st["exists"] else 2
