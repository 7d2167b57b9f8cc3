"""Mix the test split under the preset's conditions: noisy mixtures at exact SNRs and corrupted lip videos.

Writes ``<out>/mixtures/<condition_id>/<utt_id>/{mixture,clean,noise}.wav``, ``lips.npy``
(corrupted uint8 frames), ``corruption.npy`` (per-frame corruption level) and the table
``<out>/mixtures.parquet`` (one row per utterance x condition). The corpus is built first if
needed (or given with ``--corpus``). It runs the runner's cached mixing jobs (the same as
``run`` with the same preset and ``--out``, which then reuses them; rerunning is free).

``mix preview [--utt ID]`` writes, for one utterance, a PNG grid of each visual corruption at
three severities and the spectrograms of its mixtures at three SNRs, under ``<out>/preview/<utt>/``.

Examples::

    python run_benchmark.py mix --preset smoke --out runs/smoke
    python run_benchmark.py mix preview --preset smoke --utt syn005f_000
    python run_benchmark.py mix --corpus data/corpus/mine --set conditions.noises=[white,cafe]
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from benchmark.cli import add_spec_arguments

NAME = "mix"
HELP = "mix noisy test items at exact SNRs and corrupt their lip videos (or: mix preview --utt ID)"

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="build", choices=("build", "preview"),
                   help="build (default): write the mixtures; preview: PNGs for one utterance")
    add_spec_arguments(p)
    p.add_argument("--corpus", default=None, metavar="PATH", help="an existing corpus root (default: build/reuse the preset's)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: runner.jobs)")
    p.add_argument("--utt", default=None, help="preview: utterance id (default: the first of the split)")
    p.add_argument("--snrs", type=float, nargs="+", default=None, help="preview: three SNRs in dB (default -5 5 15)")


def _corpus_root(args: argparse.Namespace, spec) -> Path:
    if args.corpus:
        from benchmark.corpus.manifest import read_manifest

        read_manifest(args.corpus)  # clear error if it is not a corpus
        return Path(args.corpus)
    from benchmark.corpus.build import ensure_corpus

    return Path(ensure_corpus(spec.corpus))


def run(args: argparse.Namespace) -> int:
    from benchmark.cli import load_stage_spec

    spec, out = load_stage_spec(args)
    root = _corpus_root(args, spec)
    cs = spec.conditions
    if args.action == "preview":
        from benchmark.conditions.preview import DEFAULT_SNRS, preview_utterance

        label = args.utt or "first"
        paths = preview_utterance(root, args.utt, out / "preview" / label, noises=cs.noises, noise_options=cs.noise_options,
                                  split=cs.split, seed=cs.seed, definition=cs.snr_definition,
                                  snrs=tuple(args.snrs) if args.snrs else DEFAULT_SNRS)
        for p in paths:
            print(p)
        return 0
    from benchmark.conditions.build import MIX_TABLE
    from benchmark.runner.pipeline import RunOptions, run_stages

    jobs = args.jobs if args.jobs is not None else spec.runner.jobs
    # the runner's cached mixing jobs: `run` with the same preset and --out reuses them
    opts = RunOptions(jobs=jobs, report=False, preset=args.preset, corpus_root=args.corpus)
    summary, produced = run_stages(spec, out, "mix", opts)
    table = produced["mixtures"]
    ok = table[table["status"] == "ok"] if "status" in table else table
    n_cond = table["condition_id"].nunique()
    print(f"{len(table)} items ({table['utt_id'].nunique()} utterances x {n_cond} conditions) -> {out / MIX_TABLE}"
          f"  [{summary.stages['mix'].summary()}]")
    if len(ok):
        worst = (ok["snr_measured_db"] - ok["snr_db"]).abs().max()
        print(f"max |measured - target SNR| = {worst:.2e} dB; mean corrupted frame fraction "
              f"{ok.groupby('corruption')['corrupted_fraction'].mean().round(3).to_dict()}")
    n_bad = len(table) - len(ok)
    if n_bad:
        print(f"{n_bad} items failed (see the 'error' column of {out / MIX_TABLE}; rerun with `run --retry-failed`)")
    return 0 if summary.ok and n_bad == 0 else 1
