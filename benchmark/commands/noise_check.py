"""Speech prior or noise model? Enhance one cell of a finished run again with the noise variance
fixed to the true noise (the oracle-noise check, :mod:`benchmark.analysis.noise_model`), beside
the run's own NMF noise model, for every training seed of the listed models; writes
<run>/analysis/noise_model.csv and prints the per-noise table. The next `report` of the run
shows it (section "Speech prior or noise model?").

Example:  python run_benchmark.py noise-check runs/study --snr 0 --models a-vae av-vae/concat
          python run_benchmark.py report runs/study --out reports/study
"""
from __future__ import annotations

import argparse

NAME = "noise-check"
HELP = "oracle-noise check of a finished run: is a loss the speech prior's or the NMF noise model's?"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="finished run folder (trained models and mixtures; results.parquet for the comparison)")
    p.add_argument("--models", nargs="+", default=["a-vae"], help="model labels of the run (default: a-vae)")
    p.add_argument("--algorithm", default="ldem", help="one of the run's algorithms (default: ldem)")
    p.add_argument("--snr", type=float, default=0.0, help="input SNR of the cell in dB (default: 0)")
    p.add_argument("--corruption", default="none", help="video condition of the cell (default: none)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (one model and seed each; default: 2)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.analysis.noise_model import (
        RESULT_FILE, NoiseCheckConfig, cell_line, consistency, format_summary, load_results, run_noise_check,
        summarize_check,
    )

    cfg = NoiseCheckConfig(models=list(args.models), algorithm=args.algorithm, snr_db=args.snr,
                           corruption=args.corruption, jobs=args.jobs)
    try:
        rows = run_noise_check(args.run_dir, cfg, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"noise-check: {exc}")
    results = load_results(args.run_dir)
    gap = consistency(rows, results)
    print(format_summary(summarize_check(rows, results), cell_line(rows)))
    if gap is not None:
        print(f"NMF arm vs the run's own result rows: max |SI-SDR difference| {gap:.3g} dB")
    print(f"rows: {Path(args.run_dir) / RESULT_FILE}")
    return 0
