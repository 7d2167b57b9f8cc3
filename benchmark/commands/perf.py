"""Speed benchmark of the enhancement algorithms (see :mod:`benchmark.perf`).

Examples::

    python run_benchmark.py perf --n-utts 8 --duration 3
    python run_benchmark.py perf --checkpoint runs/smoke/models/a-vae/checkpoint.pt --algorithms mcem ldem
    python run_benchmark.py perf --batch-sizes 1 16 128 512 --devices cpu cuda   # the scaling curve
    python run_benchmark.py perf --profile --algorithms mcem ldem                 # time per EM iteration by kind
"""
from __future__ import annotations

import argparse

NAME = "perf"
HELP = ("speed benchmark: RTF and utterances/s per algorithm, one-by-one vs batched, vs the reference NumPy MCEM; "
        "the batch-size curve, a per-iteration profile, CUDA-vs-CPU agreement")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from benchmark.perf import add_arguments as _add

    _add(p)


def run(args: argparse.Namespace) -> int:
    from benchmark.perf import main_args

    return main_args(args)
