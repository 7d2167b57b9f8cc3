"""Mix stage: the test mixtures, one job per chunk of ``RunOptions.mix_chunk`` test utterances
per condition (:func:`benchmark.conditions.build.expand_conditions`).

Table (``mixtures.parquet``): one row per item (utterance x condition) with its files,
``status``/``error`` (a bad utterance fails alone; the items of a failed job get stub rows with
the job's error) and ``mix_id``: the content identity of the item's mixture files (corpus
checksum, utterance, condition, that noise's options, the mix code version), which the keys of
the enhancement and scoring jobs hash instead of file paths, independent of the chunking.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from benchmark.codehash import stage_version
from benchmark.runner.context import StageContext, job_error
from benchmark.runner.jobs import NOT_ARG, NOT_KEYED, JobOutput, StageJob, StageResult, canonical
from benchmark.runner.store import atomic_write_parquet
from benchmark.schema import STATUS_FAILED, STATUS_OK, item_id as make_item_id
from benchmark.seeding import stable_hash

log = logging.getLogger(__name__)


def _item_stub(utt: dict[str, Any], cond: Any) -> dict[str, Any]:
    """The identity columns of an item (used for failed items)."""
    d = dataclasses.asdict(cond) if dataclasses.is_dataclass(cond) else dict(cond)
    corruption = str(d.get("corruption", ""))
    return {
        "item_id": make_item_id(utt["utt_id"], cond.condition_id), "utt_id": utt["utt_id"],
        "speaker": utt.get("speaker", ""), "condition_id": cond.condition_id, "noise": d.get("noise"),
        "snr_db": d.get("snr_db"), "snr_definition": d.get("snr_definition"), "corruption": corruption,
        "severity": np.nan, "seed": d.get("seed"),
    }


def mix_job(run_dir: str, corpus_root: str, utts: list[dict[str, Any]], condition: dict[str, Any],
            noise_options: dict[str, Any]) -> JobOutput:
    """Mix a chunk of utterances under one condition; a bad utterance fails alone (status column)."""
    from benchmark.conditions.build import Condition, make_item, write_item
    from benchmark.corpus.manifest import load_utterance
    from noise_sets import NOISES

    cond = Condition(**condition)
    source = NOISES.get(cond.noise)(corpus_root=Path(corpus_root), **noise_options)
    rows, outputs = [], []
    for u in utts:
        try:
            utt = load_utterance(corpus_root, u)
            item = make_item(utt, cond, source)
            row = dict(write_item(item, Path(run_dir)))
            row.update(status=STATUS_OK, error="")
            for c in ("mixture_path", "clean_path", "noise_path", "lips_path", "corruption_path"):
                if row.get(c):
                    outputs.append(row[c])
        except Exception as exc:  # noqa: BLE001 - isolate the item
            log.error("mixing %s under %s failed: %s", u.get("utt_id"), cond.condition_id, exc)
            row = _item_stub(u, cond)
            row.update(status=STATUS_FAILED, error=f"mix: {type(exc).__name__}: {exc}")
        rows.append(row)
    return JobOutput(rows=rows, outputs=outputs)


@dataclass(frozen=True, eq=False)
class MixJob(StageJob):
    """Mixing of a chunk of utterances under one condition. Keyed: the corpus checksum, the
    utterance ids, the condition and that noise's options (changing another noise's options
    reruns nothing here); not keyed: the folders and the manifest rows (fixed by the corpus
    checksum and the ids)."""

    stage = "mix"
    fn = staticmethod(mix_job)
    corpus: str = field(metadata=NOT_ARG)
    utt_ids: tuple[str, ...] = field(metadata=NOT_ARG)
    condition: dict[str, Any]
    noise_options: dict[str, Any]
    run_dir: str = field(metadata=NOT_KEYED)
    corpus_root: str = field(metadata=NOT_KEYED)
    utts: tuple[dict[str, Any], ...] = field(metadata=NOT_KEYED)

    def mix_id(self, utt_id: str) -> str:
        """The identity of one item's mixture files (a pure function of these)."""
        return stable_hash(self.corpus, utt_id, canonical(self.condition), canonical(self.noise_options),
                           self.version, length=20)


def split_utterances(ctx: StageContext, corpus_root: Path) -> pd.DataFrame:
    """The manifest rows of the spec's test split (``conditions.n_utterances`` of them)."""
    from benchmark.corpus.manifest import read_manifest, select

    df = select(read_manifest(corpus_root), ctx.spec.conditions.split, ctx.spec.conditions.n_utterances)
    if df.empty:
        raise RuntimeError(f"{corpus_root}: no utterances in split {ctx.spec.conditions.split!r}")
    return df


def plan(ctx: StageContext, upstream: dict[str, pd.DataFrame], done: Optional[pd.DataFrame] = None) -> list[MixJob]:
    """One job per (condition, chunk of utterances)."""
    if done is not None:
        return []
    from benchmark.conditions.build import expand_conditions

    corpus = upstream["corpus"].iloc[0]
    cs = ctx.spec.conditions
    utts = split_utterances(ctx, Path(corpus["root"]))
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in utts.to_dict("records")]
    jobs = []
    version = stage_version("mix")
    for cond in expand_conditions(cs):
        for i in range(0, len(rows), ctx.opts.mix_chunk):
            chunk = tuple(rows[i:i + ctx.opts.mix_chunk])
            jobs.append(MixJob(corpus=str(corpus["corpus_id"]), utt_ids=tuple(u["utt_id"] for u in chunk),
                               condition=dataclasses.asdict(cond), noise_options=cs.options_for(cond.noise),
                               run_dir=str(ctx.run_dir), corpus_root=str(corpus["root"]), utts=chunk,
                               version=version, label=f"{cond.condition_id}[{i}:{i + len(chunk)}]"))
    return jobs


def collect(ctx: StageContext, jobs: list[MixJob], result: StageResult,
            upstream: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The mixtures table (also written to ``mixtures.parquet``), with ``mix_id``."""
    from benchmark.conditions.build import Condition

    df = ctx.store.read_table("mix", result.ok_keys)
    failed = set(result.failed_keys)
    ids: dict[str, str] = {}
    stubs = []
    for j in jobs:
        cond = Condition(**j.condition)
        for u in j.utts:
            stub = _item_stub(u, cond)
            ids[stub["item_id"]] = j.mix_id(u["utt_id"])
            if j.key in failed:
                stubs.append(dict(stub, status=STATUS_FAILED, error=f"mix: job failed: {job_error(result, j.key)}"))
    if stubs:
        df = pd.concat([df, pd.DataFrame(stubs)], ignore_index=True) if len(df) else pd.DataFrame(stubs)
    if len(df):
        df["mix_id"] = df["item_id"].map(ids)
        df = df.sort_values("item_id").reset_index(drop=True)
    atomic_write_parquet(ctx.run_dir / "mixtures.parquet", df)
    return df


__all__ = ["MixJob", "mix_job", "plan", "collect", "split_utterances"]
