"""What every stage module plans from: the run's spec, folder, options and store.

A stage module (:mod:`benchmark.runner.stages`) has ``plan(ctx, upstream, done=None) ->
list[job]`` and ``collect(ctx, jobs, result) -> DataFrame``; :mod:`benchmark.runner.pipeline`
runs them in order. This module is harness (it changes no result, so it is outside every
stage's code hash).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from benchmark.runner.store import RunStore
from benchmark.schema import ITEM_COLUMNS, STATUS_FAILED, STATUS_OK


@dataclass(frozen=True)
class StageContext:
    """The run a stage plans for: ``spec`` (already limited by ``runner.limit``), the absolute
    ``run_dir``, the :class:`~benchmark.runner.pipeline.RunOptions` ``opts`` and its ``store``."""

    spec: Any
    run_dir: Path
    opts: Any
    store: RunStore

    def artifact(self, rec: dict[str, Any]) -> str:
        """Absolute path of the (first) file a job wrote (records keep run-relative paths, so a
        run folder can be moved or copied)."""
        outs = list(rec.get("outputs") or {})
        return str(self.store.path(outs[0])) if outs else str(rec["meta"]["checkpoint"])


#: the train table's label of the ``nmf-only`` baseline's speech-NMF dictionary
SPEECH_NMF = "speech-nmf"


def model_class(name: str) -> Any:
    """The registered class of model ``name``: what the stages read of a model is what its class
    declares (``needs_training``, ``init_from``, ``components``/``config_class``, ``algorithms``)."""
    from models.registry import MODELS

    return MODELS.get(name)


def trained(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """label -> ``{"checkpoint", "key"}`` of the successful jobs of a train stage's table."""
    if table is None or table.empty:
        return {}
    ok = table[table["status"] == STATUS_OK]
    return {r["label"]: {"checkpoint": r["checkpoint"], "key": r["key"]} for r in ok.to_dict("records")}


def device_is_gpu(device: str) -> bool:
    """Whether jobs on ``device`` run on a GPU (``auto`` with CUDA available counts)."""
    if device == "cuda":
        return True
    if device == "auto":
        try:
            import torch

            return bool(torch.cuda.is_available())
        except ImportError:
            return False
    return False


def plain_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows as dicts of plain Python values (numpy scalars unwrapped, NaN as None)."""
    out = []
    for r in df.to_dict("records"):
        d = {}
        for k, v in r.items():
            v = v.item() if hasattr(v, "item") else v
            d[k] = None if isinstance(v, float) and math.isnan(v) else v
        out.append(d)
    return out


def failed_row(item: dict[str, Any], system: dict[str, Any], algorithm: str, error: str) -> dict[str, Any]:
    """The failure row of one (item, system, algorithm) that no job produced: the item's identity
    columns, the system, ``status`` failed and the reason (of the stage that failed)."""
    return {**{c: item.get(c) for c in ITEM_COLUMNS}, "model_id": system.get("model_id"),
            "model": system.get("model"), "fusion": system.get("fusion"), "algorithm": algorithm,
            "status": STATUS_FAILED, "error": error}


def seed_of(value: Any) -> Optional[int]:
    """A table's ``train_seed`` value as an int (None when empty, NaN or absent: a system not
    trained in the run)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else int(f)


def job_error(result: Any, key: str) -> str:
    """The error message of job ``key`` in a :class:`~benchmark.runner.jobs.StageResult`."""
    return str(result.records.get(key, {}).get("error", "?"))


__all__ = ["StageContext", "SPEECH_NMF", "model_class", "trained", "device_is_gpu", "plain_records", "failed_row", "job_error", "seed_of"]
