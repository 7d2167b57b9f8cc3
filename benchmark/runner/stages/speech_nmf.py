"""The train stage's speech-NMF job: the clean-speech NMF dictionary of the ``nmf-only``
baseline, learned by :func:`models.enhancement.baselines.train_speech_nmf`.

A module of its own so that its code unit (``speech-nmf`` in
:data:`benchmark.codehash.STAGE_ENTRIES`) covers the EM package it runs while the speech
models' training hash does not: :mod:`.train` plans it through ``importlib`` (no static import).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmark.codehash import stage_version
from benchmark.runner.context import SPEECH_NMF, StageContext
from benchmark.runner.jobs import NOT_ARG, NOT_KEYED, JobOutput, StageJob

#: rank of the clean-speech NMF dictionary of the nmf-only baseline (train_speech_nmf's default)
SPEECH_NMF_RANK = 32


def speech_nmf_job(corpus_root: str, out_path: str, rank: int, seed: int) -> JobOutput:
    """Learn the speech NMF dictionary of the ``nmf-only`` baseline on the clean train split."""
    from models.enhancement.baselines import train_speech_nmf

    p = train_speech_nmf(Path(corpus_root), Path(out_path), rank, seed)
    p = Path(p) if p is not None else Path(out_path)
    return JobOutput(outputs=[p], meta={"checkpoint": str(p)})


@dataclass(frozen=True, eq=False)
class SpeechNMFJob(StageJob):
    """The speech NMF dictionary. Keyed: the corpus checksum, rank and seed; not keyed: where the
    corpus and the output are."""

    stage = "train"
    fn = staticmethod(speech_nmf_job)
    corpus: str = field(metadata=NOT_ARG)
    rank: int
    seed: int
    corpus_root: str = field(metadata=NOT_KEYED)
    out_path: str = field(metadata=NOT_KEYED)
    what: str = field(default=SPEECH_NMF, metadata=NOT_ARG)


def plan_job(ctx: StageContext, corpus_id: str, corpus_root: str) -> SpeechNMFJob:
    """The speech-NMF job of a run (seeded by ``enhance.seed``)."""
    return SpeechNMFJob(corpus=corpus_id, rank=SPEECH_NMF_RANK, seed=ctx.spec.enhance.seed, corpus_root=corpus_root,
                        out_path=str(ctx.run_dir / "models" / SPEECH_NMF / "speech_nmf.npz"),
                        version=stage_version("speech-nmf"), label=SPEECH_NMF)


__all__ = ["SpeechNMFJob", "speech_nmf_job", "plan_job", "SPEECH_NMF_RANK"]
