"""Score stage: the metrics of every enhanced item, in two waves.

1. The unprocessed mixtures' ``input_*`` scores, once per item (not once per (item, system,
   algorithm)): jobs of table ``score_input``, chunked per condition like the mixing, keyed by
   the items' mixture identities, the metric names and the PESQ mode.
2. One job per enhancement job, keyed by that job's key, the metric names and the PESQ mode; it
   reuses the input scores of wave 1 (an item without them has them computed in its job) and
   adds the reliability-weight summaries of each item (:func:`weight_summaries`, computed with
   :mod:`benchmark.report.diagnostics`, which is in this stage's code hash for that reason).

Table (the results): one row per (item, system, algorithm) with the metrics, ``input_*`` and
``delta_*`` columns, timings, weight summaries and ``status``/``error``: the jobs' rows, plus a
failure row (with the upstream reason) for each failure row of the enhancement table and for the
items of a failed scoring job. ``train_seed`` (the model's training seed, empty for systems not
trained in the run) is carried from the enhancement rows.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from benchmark.codehash import stage_version
from benchmark.runner.context import StageContext, failed_row, job_error, plain_records
from benchmark.runner.jobs import NOT_ARG, NOT_KEYED, JobOutput, StageJob, StageResult
from benchmark.schema import ITEM_COLUMNS, STATUS_FAILED, STATUS_OK, TRAIN_SEED_COLUMN, WEIGHT_COLUMNS

log = logging.getLogger(__name__)


def weight_summaries(traces_path: Optional[Path]) -> dict[str, float]:
    """Reliability-weight summaries (:data:`~benchmark.schema.WEIGHT_COLUMNS`) of one enhanced
    item, from its traces ``.npz``: the visual-weight trace chosen by
    :func:`benchmark.report.diagnostics.visual_weight` (decoder side first: the decoder-side
    fusion shapes the speech prior the EM actually uses) summarised by
    :func:`benchmark.report.diagnostics.weight_summary` against ``corruption_stft`` (``> 0`` =
    corrupted frame), so the per-row ``visual_weight_auc`` is the report's AUC (1 = the weight
    always drops on corrupted frames, 0.5 = blind to corruption). All NaN without weights; the
    AUC is NaN with only one kind of frame.
    """
    from benchmark.report.diagnostics import load_traces, visual_weight, weight_summary

    traces = load_traces(traces_path)
    w = visual_weight(traces, "decoder")
    if w is None:
        return {c: float("nan") for c in WEIGHT_COLUMNS}
    return weight_summary(w, traces.get("corruption_stft"))


def score_input_job(run_dir: str, items: list[dict[str, Any]], names: list[str], pesq_mode: str) -> JobOutput:
    """The unprocessed mixture's scores (``input_<col>``, ``input_<col>_error``) of a chunk of
    items, computed once per item and reused by every (model, algorithm) that scores it.

    A bad item gets no row (its score jobs then compute the input scores themselves and record
    the problem there)."""
    from benchmark.audio_io import read_audio
    from benchmark.metrics import score_input

    rd = Path(run_dir)
    rows = []
    for it in items:
        try:
            ref = read_audio(rd / it["clean_path"], validate=False)
            mix = read_audio(rd / it["mixture_path"], validate=False)
        except Exception as exc:  # noqa: BLE001 - isolate the item
            log.error("input scores of %s: %s: %s", it.get("item_id"), type(exc).__name__, exc)
            continue
        rows.append({"item_id": it["item_id"], **score_input(ref, mix, names=list(names), pesq_mode=pesq_mode)})
    return JobOutput(rows=rows)


def score_job(run_dir: str, items: list[dict[str, Any]], enhanced: list[dict[str, Any]], names: list[str],
              pesq_mode: str, input_scores: Optional[dict[str, dict[str, Any]]] = None) -> JobOutput:
    """Score the enhanced items of one enhancement job: one result row per item.

    ``input_scores``: item_id -> the mixture's scores from :func:`score_input_job` (reused, not
    recomputed; an item without them has them computed here)."""
    from benchmark.audio_io import read_audio
    from benchmark.metrics import score_pair

    rd = Path(run_dir)
    by_id = {it["item_id"]: it for it in items}
    input_scores = input_scores or {}
    rows = []
    for e in enhanced:
        it = by_id[e["item_id"]]
        row = {c: it.get(c) for c in ITEM_COLUMNS}
        row.update({k: e.get(k) for k in ("model_id", "model", "fusion", "algorithm", TRAIN_SEED_COLUMN)})
        row.update(status=e.get("status", STATUS_FAILED), error=e.get("error", ""),
                   wall_time_s=e.get("wall_time_s", np.nan), rtf=e.get("rtf", np.nan))
        if row["status"] == STATUS_OK:
            t0 = time.perf_counter()
            try:
                ref = read_audio(rd / it["clean_path"], validate=False)
                est = read_audio(rd / e["enhanced_path"], validate=False)
                mix = read_audio(rd / it["mixture_path"], validate=False)
                row.update(score_pair(ref, est, mix, names=list(names), pesq_mode=pesq_mode,
                                      inputs=input_scores.get(e["item_id"])))
            except Exception as exc:  # noqa: BLE001 - one bad item does not stop the job
                row.update(status=STATUS_FAILED, error=f"score: {type(exc).__name__}: {exc}")
            row["score_time_s"] = time.perf_counter() - t0
            row.update(weight_summaries(rd / e["traces_path"] if e.get("traces_path") else None))
        else:
            row.update({c: float("nan") for c in WEIGHT_COLUMNS})
        rows.append(row)
    return JobOutput(rows=rows)


@dataclass(frozen=True, eq=False)
class ScoreInputJob(StageJob):
    """Input scores of a chunk of items. Keyed: the items' mixture identities, the metric names,
    the PESQ mode; not keyed: the run folder and the mixture rows (fixed by ``mix_ids``)."""

    stage = "score"
    table_name = "score_input"
    fn = staticmethod(score_input_job)
    mix_ids: tuple[tuple[str, str], ...] = field(metadata=NOT_ARG)
    names: tuple[str, ...]
    pesq_mode: str
    run_dir: str = field(metadata=NOT_KEYED)
    items: tuple[dict[str, Any], ...] = field(metadata=NOT_KEYED)
    what: str = field(default="input", metadata=NOT_ARG)


@dataclass(frozen=True, eq=False)
class ScoreJob(StageJob):
    """Scores of the items of one enhancement job. Keyed: that job's key, the metric names, the
    PESQ mode; not keyed: the run folder, the mixture and enhancement rows (fixed by the
    enhancement key) and the input scores (fixed by the same and the metric settings)."""

    stage = "score"
    fn = staticmethod(score_job)
    enhance: str = field(metadata=NOT_ARG)
    names: tuple[str, ...]
    pesq_mode: str
    run_dir: str = field(metadata=NOT_KEYED)
    items: tuple[dict[str, Any], ...] = field(metadata=NOT_KEYED)
    enhanced: tuple[dict[str, Any], ...] = field(metadata=NOT_KEYED)
    input_scores: dict[str, dict[str, Any]] = field(default_factory=dict, metadata=NOT_KEYED)


def _scored(upstream: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The enhancement rows made by jobs, and the mixture rows by item_id."""
    enh = upstream["enhance"]
    mixed = {r["item_id"]: r for r in plain_records(upstream["mix"])} if len(upstream["mix"]) else {}
    if enh.empty or "job" not in enh:
        return enh.iloc[:0], mixed
    return enh[enh["job"].notna()], mixed


def _input_jobs(ctx: StageContext, upstream: dict[str, pd.DataFrame]) -> list[ScoreInputJob]:
    ms = ctx.spec.metrics
    rows, mixed = _scored(upstream)
    by_cond: dict[str, list[dict[str, Any]]] = {}
    for iid in sorted(set(rows["item_id"])) if len(rows) else []:
        by_cond.setdefault(str(mixed[iid]["condition_id"]), []).append(mixed[iid])
    jobs = []
    for cid in sorted(by_cond):
        recs = by_cond[cid]
        for i in range(0, len(recs), ctx.opts.mix_chunk):
            chunk = tuple(recs[i:i + ctx.opts.mix_chunk])
            jobs.append(ScoreInputJob(mix_ids=tuple((c["item_id"], c["mix_id"]) for c in chunk), names=tuple(ms.names),
                                      pesq_mode=ms.pesq_mode, run_dir=str(ctx.run_dir), items=chunk,
                                      version=stage_version("score"), label=f"input/{cid}[{i}:{i + len(chunk)}]"))
    return jobs


def plan(ctx: StageContext, upstream: dict[str, pd.DataFrame], done: Optional[pd.DataFrame] = None) -> list[StageJob]:
    """First call: the input-score jobs; later calls (``done`` given): one scoring job per
    successful enhancement job, with the input scores wave 1 produced."""
    if done is None:
        return list(_input_jobs(ctx, upstream))
    ms = ctx.spec.metrics
    inp = ctx.store.read_table("score_input", [j.key for j in _input_jobs(ctx, upstream)])
    input_scores = {r.pop("item_id"): r for r in inp.to_dict("records")} if len(inp) else {}
    rows, mixed = _scored(upstream)
    jobs = []
    for key, grp in rows.groupby("job", sort=True):
        enhanced = [{k: (None if (isinstance(v, float) and np.isnan(v) and k in ("enhanced_path", "traces_path")) else v)
                     for k, v in r.items() if k not in ("job", "job_label")} for r in grp.to_dict("records")]
        items = tuple(mixed[e["item_id"]] for e in enhanced)
        jobs.append(ScoreJob(enhance=str(key), names=tuple(ms.names), pesq_mode=ms.pesq_mode, run_dir=str(ctx.run_dir),
                             items=items, enhanced=tuple(enhanced),
                             input_scores={it["item_id"]: input_scores[it["item_id"]] for it in items
                                     if it["item_id"] in input_scores},
                             version=stage_version("score"), label=str(grp["job_label"].iloc[0])))
    return jobs


def collect(ctx: StageContext, jobs: list[StageJob], result: StageResult,
            upstream: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The results table (not yet written; the pipeline writes ``results.parquet``)."""
    pair = [j for j in jobs if isinstance(j, ScoreJob)]
    ok = set(result.ok_keys)
    frames = [ctx.store.read_table("score", [j.key for j in pair if j.key in ok])]
    enh = upstream["enhance"]
    if len(enh):
        terminal = enh[enh["job"].isna()] if "job" in enh else enh
        frames.append(terminal.drop(columns=[c for c in ("job", "job_label") if c in terminal]))
    _, mixed = _scored(upstream)
    for j in pair:
        if j.key not in ok:
            err = f"score: job failed: {job_error(result, j.key)}"
            frames.append(pd.DataFrame([{**failed_row(mixed.get(e["item_id"], {"item_id": e["item_id"]}), e,
                                                      e["algorithm"], err), TRAIN_SEED_COLUMN: e.get(TRAIN_SEED_COLUMN)}
                                        for e in j.enhanced]))
    frames = [f for f in frames if len(f)]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if df.empty:
        return df
    for c in WEIGHT_COLUMNS:
        if c not in df:
            df[c] = np.nan
    # numeric, NaN for the systems not trained in the run (what the report's statistics expect)
    df[TRAIN_SEED_COLUMN] = pd.to_numeric(df[TRAIN_SEED_COLUMN], errors="coerce") if TRAIN_SEED_COLUMN in df else np.nan
    return df


__all__ = ["ScoreJob", "ScoreInputJob", "score_job", "score_input_job", "weight_summaries", "plan", "collect"]
