"""The pipeline's stages, one module each, in order: :mod:`.corpus`, :mod:`.train`, :mod:`.mix`,
:mod:`.enhance`, :mod:`.score` (:data:`ORDER`).

Each module has ``plan(ctx, upstream, done=None) -> list[job]`` (its jobs, one frozen
:class:`~benchmark.runner.jobs.StageJob` dataclass per kind, planned from the tables of the
stages before it; called again with this stage's table so far until it plans no new key, for
stages that run in waves) and ``collect(ctx, jobs, result, upstream) -> DataFrame`` (its table,
failures as ``status`` rows with the upstream reason), and its job functions. A stage module is
in its own stage's code hash (:data:`benchmark.codehash.STAGE_ENTRIES`).

This package imports none of its modules at import time (a stage's code hash follows its parent
packages' import-time imports): the job functions are reached by name through ``__getattr__``.
"""
from __future__ import annotations

import importlib
from typing import Any

ORDER = ("corpus", "train", "mix", "enhance", "score")

#: public names of the stage modules, reachable as ``benchmark.runner.stages.<name>``
_EXPORTS = {
    "corpus_job": "corpus", "train_job": "train", "speech_nmf_job": "speech_nmf", "mix_job": "mix",
    "enhance_job": "enhance", "load_model": "enhance", "score_input_job": "score", "score_job": "score",
    "weight_summaries": "score",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ORDER", *_EXPORTS]
