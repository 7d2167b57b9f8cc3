"""Enhance every mixture of a run with each configured (model, algorithm) and the baselines.

Runs the cached stages up to enhancement (corpus, training, mixing are reused when already
done) and writes ``<out>/enhanced/<model_key>/<algorithm>/<condition_id>/<utt_id>.wav`` with
its traces ``.npz`` (fusion weights, cost, MH acceptance, corruption at the STFT rate) and the
table ``<out>/enhanced.parquet`` (timing, RTF, device, status, error per item). The per-batch
science is :func:`models.enhancement.api.enhance`; the file I/O and caching are the runner's.

Examples::

    python run_benchmark.py enhance --preset smoke
    python run_benchmark.py enhance --preset smoke --set enhance.algorithms=[mcem,ldem] --device cpu
    python run_benchmark.py enhance --preset smoke --set 'enhance.algorithm_params={ldem: {n_iter: 50}}'
"""
from __future__ import annotations

import argparse
import logging

from benchmark.cli import add_spec_arguments

NAME = "enhance"
HELP = "enhance every mixture with each (model, algorithm) and the baselines; writes wavs, traces, enhanced.parquet"

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_spec_arguments(p)
    p.add_argument("--device", default=None, choices=("cpu", "cuda", "auto"), help="override enhance.device")
    p.add_argument("--jobs", type=int, default=None, help="parallel jobs (default: runner.jobs)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use at most N test utterances")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from benchmark.cli import load_stage_spec
    from benchmark.runner.pipeline import RunOptions, run_stages

    spec, out = load_stage_spec(args, [f"enhance.device={args.device}"] if args.device else [])
    jobs = args.jobs if args.jobs is not None else spec.runner.jobs
    run_stages(spec, out, "enhance", RunOptions(jobs=jobs, progress=not args.no_progress, report=False, preset=args.preset))
    table = out / "enhanced.parquet"
    if not table.exists():
        log.error("no enhanced.parquet was written under %s", out)
        return 1
    df = pd.read_parquet(table)
    if len(df) == 0:
        print(f"no enhanced items -> {table}")
        return 1
    summ = df.groupby(["model_id", "algorithm"], dropna=False).agg(
        items=("item_id", "size"), ok=("status", lambda s: int((s == "ok").sum())), mean_rtf=("rtf", "mean"))
    print(summ.to_string())
    print(f"{len(df)} rows -> {table}")
    n_bad = int((df["status"] != "ok").sum())
    if n_bad:
        print(f"{n_bad} items failed; see the 'error' column")
    return 0 if n_bad == 0 else 1
