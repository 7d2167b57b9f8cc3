"""Torch CPU threads of one job (training, enhancement): one by default, set by an environment variable.

Parallelism belongs to the runner (one job per worker process). With torch's default (one thread
per core) a job spin-waits against the other workers and the other processes of a shared machine:
on 2 shared cores, two OpenMP threads trained ~16x *slower* than one, and LDEM batches of the smoke
grid took 40-90 s instead of ~4 s.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator


def threads_from_env(env_var: str, default: int = 1) -> int:
    """``int($env_var)`` (at least 1), or ``default`` when it is unset or not a number."""
    try:
        return max(1, int(os.environ.get(env_var, str(default))))
    except ValueError:
        return default


@contextlib.contextmanager
def torch_threads(env_var: str, default: int = 1) -> Iterator[int]:
    """Run the block with :func:`threads_from_env` torch threads; the previous number is restored."""
    import torch

    n = threads_from_env(env_var, default)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
