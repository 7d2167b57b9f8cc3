"""Wall time of a grid with 1 versus N workers, and where the time goes (per stage).

    python -m benchmark.perf_grid [--preset smoke] [--workers 1 2] [--limit N] [--set k=v ...]

Each worker count runs the whole grid (train -> mix -> enhance -> score) from an empty run
folder; the corpus is built (or found) once beforehand and shared, so its build time is shown
separately and not counted in the comparison. The per-stage columns are wall times of each
stage in that run; ``job-s`` is the summed time of the stage's jobs (the CPU work, if one job
uses one core), so ``job-s / wall`` is the effective parallelism of the stage.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)


def time_grid(spec: Any, workers: int, out: Path, *, dask_local: int = 0) -> dict[str, Any]:
    """Run the grid of ``spec`` in the empty folder ``out``; return wall times per stage."""
    from benchmark.runner.pipeline import RunOptions, run_pipeline

    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    summary = run_pipeline(spec, out, RunOptions(jobs=workers, dask_local=dask_local, progress=False, report=False))
    total = time.perf_counter() - t0
    stages = {}
    for name, res in summary.stages.items():
        job_s = sum(float(r.get("wall_time_s") or 0.0) for r in res.records.values())
        stages[name] = {"wall_s": res.wall_time_s, "job_s": job_s, "jobs": len(res.keys), "failed": len(res.failed_keys)}
    return {"workers": workers, "total_s": total, "stages": stages, "rows": summary.n_rows,
            "failed_rows": summary.n_failed_rows}


def format_table(results: list[dict[str, Any]], corpus_s: float) -> str:
    stage_names = [s for s in ("train", "mix", "enhance", "score") if any(s in r["stages"] for r in results)]
    head = f"{'workers':>7} {'total s':>8} " + " ".join(f"{s + ' wall/job-s':>20}" for s in stage_names) + f" {'rows':>6}"
    lines = [f"corpus (built or found once, shared): {corpus_s:.1f} s", head]
    for r in results:
        cells = []
        for s in stage_names:
            st = r["stages"].get(s)
            cells.append(f"{st['wall_s']:>9.1f}/{st['job_s']:<10.1f}" if st else f"{'-':>20}")
        lines.append(f"{r['workers']:>7} {r['total_s']:>8.1f} " + " ".join(cells) + f" {r['rows']:>6}")
    if len(results) >= 2 and results[-1]["total_s"] > 0:
        lines.append(f"speed-up {results[0]['workers']} -> {results[-1]['workers']} workers: "
                     f"{results[0]['total_s'] / results[-1]['total_s']:.2f}x")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    from benchmark.corpus.build import ensure_corpus
    from benchmark.spec import load_spec

    p = argparse.ArgumentParser(prog="python -m benchmark.perf_grid", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="smoke")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--limit", type=int, default=None, help="at most N test utterances")
    p.add_argument("--out-root", default=None, help="where the run folders go (default: a temporary folder)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides) + ([f"runner.limit={args.limit}"] if args.limit else [])
    spec = load_spec(args.preset, overrides)
    t0 = time.perf_counter()
    ensure_corpus(spec.corpus, progress=False)
    corpus_s = time.perf_counter() - t0
    root = Path(args.out_root) if args.out_root else Path(tempfile.mkdtemp(prefix="perf_grid_"))
    results = []
    for w in args.workers:
        log.warning("timing %s with %d worker(s)...", args.preset, w)
        results.append(time_grid(spec, w, root / f"{args.preset}-w{w}"))
    print(f"grid {args.preset}: wall time from an empty run folder (corpus excluded)")
    print(format_table(results, corpus_s))
    if not args.out_root:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
