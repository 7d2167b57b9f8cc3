"""Write the report of a finished run folder: reports/NAME/index.html (one self-contained file),
summary.md, tables/ (Markdown, LaTeX booktabs, CSV) and figures/ (PNG + PDF).

Example:  python run_benchmark.py report runs/smoke --out reports/smoke
"""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "report"
HELP = "write tables, figures and a self-contained HTML report of a finished run"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="finished run folder (with results.parquet)")
    p.add_argument("--out", default=None, help="report folder (default: reports/<run folder name>)")
    p.add_argument("--reference", default=None, help="YAML of published figures for the reference comparison "
                   "(format: benchmark/report/reference_example.yaml)")
    p.add_argument("--bootstrap", type=int, default=None, help="bootstrap resamples for the CIs (default: from run.json or 2000)")
    p.add_argument("--examples", type=int, default=None, help="number of example utterances (default: 2)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from benchmark.audio_io import DataError
    from benchmark.report.api import _report_spec, write_report
    from benchmark.report.runfolder import load_run
    from benchmark.spec import replace

    try:
        rd = load_run(args.run_dir)
    except DataError as exc:
        raise SystemExit(f"report: {exc}")
    rs = _report_spec(None, rd)
    changes = {k: v for k, v in (("reference", args.reference), ("bootstrap", args.bootstrap),
                                 ("n_examples", args.examples)) if v is not None}
    rs = replace(rs, **changes)
    out = Path(args.out) if args.out else Path("reports") / Path(args.run_dir).resolve().name
    index = write_report(args.run_dir, out, rs, progress=not args.no_progress)
    print(f"report: {index}")
    return 0
