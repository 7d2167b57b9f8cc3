"""Train stage: one training job per model entry that needs training, plus the speech-NMF
dictionary of the ``nmf-only`` baseline (its job in :mod:`.speech_nmf`, code unit ``speech-nmf``).

What a model needs is declared by its class (:data:`models.registry.MODELS`), not by rules here:
``needs_training = False`` (composites, built from other entries' checkpoints at enhancement:
no job) and ``init_from = "<model name>"`` (AV models start from a trained entry of that model,
the A-VAE, when ``training.init_from_avae`` and the entry allow it). Jobs run in waves: the
entries without ``init_from`` (and the speech NMF) first, then those that start from them.

Table: one row per job, ``label`` (the model entry's label, or ``speech-nmf``), ``key``,
``checkpoint`` (absolute; empty if failed), ``status`` (``ok``/``failed``) and ``error``
(``train: ...``). A failed training is a failed row; the entries that start from it still train
(from scratch), as before this split.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from benchmark.runner.codehash import stage_version
from benchmark.runner.context import StageContext, device_is_gpu, job_error, model_class
from benchmark.runner.jobs import NOT_ARG, NOT_KEYED, JobOutput, StageJob, StageResult
from benchmark.runner.store import STATUS_DONE
from benchmark.schema import STATUS_FAILED, STATUS_OK, model_key

log = logging.getLogger(__name__)

COLUMNS = ["label", "key", "checkpoint", "status", "error"]


def train_job(entry: dict[str, Any], training: dict[str, Any], corpus_root: str, out_dir: str,
              init_checkpoint: Optional[str] = None) -> JobOutput:
    """Train one speech model on the clean train split; returns its checkpoint path.
    ``init_checkpoint``: the checkpoint the model starts from (its class's ``init_from``)."""
    from benchmark.configtools import from_dict
    from benchmark.spec import ModelEntry, TrainingSpec
    from models.training import train_model

    e = from_dict(ModelEntry, entry, source="model entry")
    t = from_dict(TrainingSpec, training, source="training")
    ckpt = Path(train_model(e, t, Path(corpus_root), Path(out_dir),
                            init_from=Path(init_checkpoint) if init_checkpoint else None, progress=False))
    return JobOutput(outputs=[ckpt], meta={"checkpoint": str(ckpt)})


@dataclass(frozen=True, eq=False)
class TrainJob(StageJob):
    """Training of one model entry. Keyed: the entry, the training settings, the corpus checksum,
    the key of the job it starts from; not keyed: where the corpus and the output are."""

    stage = "train"
    fn = staticmethod(train_job)
    entry: dict[str, Any]
    training: dict[str, Any]
    corpus: str = field(metadata=NOT_ARG)
    corpus_root: str = field(metadata=NOT_KEYED)
    out_dir: str = field(metadata=NOT_KEYED)  # models/<label>: the label is in ``entry``
    init_from: Optional[str] = field(default=None, metadata=NOT_ARG)  # key of the job it starts from
    init_checkpoint: Optional[str] = field(default=None, metadata=NOT_KEYED)  # that job's checkpoint


def needs_training(entry: Any) -> bool:
    return bool(getattr(model_class(entry.name), "needs_training", True))


def init_source(entry: Any) -> Optional[str]:
    """The model name whose trained entry ``entry`` starts from (its class's ``init_from``)."""
    return getattr(model_class(entry.name), "init_from", None)


def serial(ctx: StageContext) -> bool:
    """Training on a GPU runs one job at a time in this process."""
    return device_is_gpu(ctx.spec.training.device)


def plan(ctx: StageContext, upstream: dict[str, pd.DataFrame], done: Optional[pd.DataFrame] = None) -> list[StageJob]:
    """First call: the entries without ``init_from`` and the speech NMF; second call (``done``:
    this stage's table so far): the entries that start from one of them (the pipeline stops
    calling when a call plans no new key)."""
    from benchmark.configtools import to_dict

    spec = ctx.spec
    corpus = upstream["corpus"].iloc[0]
    training = to_dict(spec.training)
    entries = [e for e in spec.models if needs_training(e)]

    def job(e: Any, init: Optional[dict[str, Any]]) -> TrainJob:
        return TrainJob(to_dict(e), training, corpus=str(corpus["corpus_id"]), corpus_root=str(corpus["root"]),
                        out_dir=str(ctx.run_dir / "models" / model_key(e.label)),
                        init_from=init["key"] if init else None, init_checkpoint=init["checkpoint"] if init else None,
                        version=stage_version("train"), label=e.label)

    if done is None:
        jobs: list[StageJob] = [job(e, None) for e in entries if init_source(e) is None]
        if "nmf-only" in spec.enhance.baselines:
            # imported by name: the speech-NMF job (code unit ``speech-nmf``) runs the EM package's
            # baselines, which must not enter the speech models' training hash
            nmf = importlib.import_module("benchmark.runner.stages.speech_nmf")
            jobs.append(nmf.plan_job(ctx, str(corpus["corpus_id"]), str(corpus["root"])))
        return jobs
    ok = done[done["status"] == STATUS_OK].set_index("label")
    jobs = []
    for e in entries:
        src = init_source(e)
        if src is None:
            continue
        init = None
        if spec.training.init_from_avae and e.training.get("init_from_avae", True):
            first = next((m.label for m in spec.models if m.name == src and m.label in ok.index), None)
            if first is not None:
                init = {"key": ok.loc[first, "key"], "checkpoint": ok.loc[first, "checkpoint"]}
        jobs.append(job(e, init))
    return jobs


def collect(ctx: StageContext, jobs: list[StageJob], result: StageResult,
            upstream: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per training job."""
    rows = []
    for j in jobs:
        rec = result.records.get(j.key, {})
        ok = rec.get("status") == STATUS_DONE
        rows.append({"label": j.label, "key": j.key, "checkpoint": ctx.artifact(rec) if ok else "",
                     "status": STATUS_OK if ok else STATUS_FAILED,
                     "error": "" if ok else f"train: training of {j.label} failed: {job_error(result, j.key)}"})
    return pd.DataFrame(rows, columns=COLUMNS)


__all__ = ["TrainJob", "train_job", "plan", "collect", "serial",
           "needs_training", "init_source"]
