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

Training seeds (``training.seeds``, :attr:`benchmark.spec.TrainingSpec.seed_list`): every entry
is trained once per seed, with ``training.seed`` set to it (the job's ``training`` dict never
holds ``seeds``, so a single-seed run plans exactly the keys it planned before the seeds axis);
an AV model starts from the A-VAE *of the same seed*. Checkpoints go to ``models/<label>/``
with one seed and to ``models/<label>/seed-<s>/`` with several. The table has a ``train_seed``
column (empty for the speech NMF, which is not a trained speech model).
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from benchmark.codehash import stage_version
from benchmark.runner.context import StageContext, device_is_gpu, job_error, model_class, seed_of
from benchmark.runner.jobs import NOT_ARG, NOT_KEYED, JobOutput, StageJob, StageResult
from benchmark.runner.store import STATUS_DONE
from benchmark.schema import STATUS_FAILED, STATUS_OK, model_key

log = logging.getLogger(__name__)

COLUMNS = ["label", "train_seed", "key", "checkpoint", "status", "error"]
#: a field that is neither keyed nor a job-function argument (what the table says of a job)
_INFO = {"keyed": False, "arg": False}


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
    model_label: str = field(default="", metadata=_INFO)  # the entry's label (``label`` may add the seed)

    @property
    def train_seed(self) -> int:
        """The training seed of this job (``training["seed"]``)."""
        return int(self.training["seed"])


def needs_training(entry: Any) -> bool:
    """False for composites (their class says so), entries naming a trained ``checkpoint`` and
    external systems."""
    if getattr(entry, "checkpoint", None) or getattr(entry, "external", False):
        return False
    return bool(getattr(model_class(entry.name), "needs_training", True))


def checkpoint_rows(spec: Any) -> list[dict[str, Any]]:
    """The train-table rows of the entries that name a trained ``checkpoint`` (no job): ``key``
    is ``checkpoint:<SHA-256 of checkpoint.pt>`` (so a changed checkpoint reruns what uses it),
    ``checkpoint`` the absolute ``.pt`` path (relative paths resolve against the current directory)."""
    from models.checkpoint import checkpoint_file, checksum

    rows = []
    for e in spec.models:
        if getattr(e, "checkpoint", None) and not getattr(e, "external", False):
            path = checkpoint_file(Path(e.checkpoint).resolve())
            rows.append({"label": e.label, "key": f"checkpoint:{checksum(path)}", "checkpoint": str(path),
                         "status": STATUS_OK, "error": ""})
    return rows


def init_source(entry: Any) -> Optional[str]:
    """The model name whose trained entry ``entry`` starts from (its class's ``init_from``)."""
    return getattr(model_class(entry.name), "init_from", None)


def serial(ctx: StageContext) -> bool:
    """Training on a GPU runs one job at a time in this process."""
    return device_is_gpu(ctx.spec.training.device)


def seed_training(training: dict[str, Any], seed: int) -> dict[str, Any]:
    """The ``training`` dict of one seed's job: ``seed`` set, ``seeds`` dropped (so the job of
    the one seed of a single-seed run is keyed exactly as before the seeds axis)."""
    out = {k: v for k, v in training.items() if k != "seeds"}
    out["seed"] = int(seed)
    return out


def model_dir(run_dir: Path, label: str, seed: int, multi_seed: bool) -> Path:
    """Where one training writes: ``models/<model_key>/`` (one seed) or ``.../seed-<s>/``."""
    d = Path(run_dir) / "models" / model_key(label)
    return d / f"seed-{int(seed)}" if multi_seed else d


def plan(ctx: StageContext, upstream: dict[str, pd.DataFrame], done: Optional[pd.DataFrame] = None) -> list[StageJob]:
    """First call: the entries without ``init_from`` and the speech NMF; second call (``done``:
    this stage's table so far): the entries that start from one of them (the pipeline stops
    calling when a call plans no new key)."""
    from benchmark.configtools import to_dict

    spec = ctx.spec
    corpus = upstream["corpus"].iloc[0]
    training = to_dict(spec.training)
    seeds = spec.training.seed_list
    multi = len(seeds) > 1
    entries = [e for e in spec.models if needs_training(e)]

    def job(e: Any, seed: int, init: Optional[dict[str, Any]]) -> TrainJob:
        return TrainJob(to_dict(e), seed_training(training, seed), corpus=str(corpus["corpus_id"]),
                        corpus_root=str(corpus["root"]), out_dir=str(model_dir(ctx.run_dir, e.label, seed, multi)),
                        init_from=init["key"] if init else None, init_checkpoint=init["checkpoint"] if init else None,
                        version=stage_version("train"), label=f"{e.label} seed={seed}" if multi else e.label,
                        model_label=e.label)

    if done is None:
        jobs: list[StageJob] = [job(e, s, None) for s in seeds for e in entries if init_source(e) is None]
        if "nmf-only" in spec.enhance.baselines:
            # imported by name: the speech-NMF job (code unit ``speech-nmf``) runs the EM package's
            # baselines, which must not enter the speech models' training hash
            nmf = importlib.import_module("benchmark.runner.stages.speech_nmf")
            jobs.append(nmf.plan_job(ctx, str(corpus["corpus_id"]), str(corpus["root"])))
        return jobs
    ok_rows = done[done["status"] == STATUS_OK]
    ok = {(str(r["label"]), seed_of(r.get("train_seed"))): r for r in ok_rows.to_dict("records")}
    jobs = []
    for s in seeds:
        for e in entries:
            src = init_source(e)
            if src is None:
                continue
            init = None
            if spec.training.init_from_avae and e.training.get("init_from_avae", True):
                # the first trained entry of that model, of the same training seed
                # (or of no seed: an entry that names a trained ``checkpoint``)
                first = next((ok.get((m.label, s)) or ok[(m.label, None)] for m in spec.models
                              if m.name == src and ((m.label, s) in ok or (m.label, None) in ok)), None)
                if first is not None:
                    init = {"key": first["key"], "checkpoint": first["checkpoint"]}
            jobs.append(job(e, s, init))
    return jobs


def collect(ctx: StageContext, jobs: list[StageJob], result: StageResult,
            upstream: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per training job."""
    rows = []
    for j in jobs:
        rec = result.records.get(j.key, {})
        ok = rec.get("status") == STATUS_DONE
        label = getattr(j, "model_label", "") or j.label
        rows.append({"label": label, "train_seed": j.train_seed if isinstance(j, TrainJob) else None, "key": j.key,
                     "checkpoint": ctx.artifact(rec) if ok else "", "status": STATUS_OK if ok else STATUS_FAILED,
                     "error": "" if ok else f"train: training of {j.label} failed: {job_error(result, j.key)}"})
    return pd.DataFrame(rows + checkpoint_rows(ctx.spec), columns=COLUMNS)


__all__ = ["TrainJob", "train_job", "plan", "collect", "serial",
           "needs_training", "init_source", "seed_training", "model_dir"]
