"""Reading a finished run folder (layout of :mod:`benchmark.schema`) for the report.

Defensive by design: only ``results.parquet`` (or ``results.csv``) is required; the mixture
and enhancement tables, traces and ``run.json`` are used when present and skipped otherwise.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from benchmark.audio_io import DataError
from benchmark.report.style import METRIC_ORDER, add_system_column
from benchmark.schema import TRAIN_SEED_COLUMN, model_key

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """A run folder loaded for reporting."""

    run_dir: Path
    results: pd.DataFrame                       # with a ``system`` column and path columns when known
    mixtures: Optional[pd.DataFrame] = None
    enhanced: Optional[pd.DataFrame] = None
    info: dict[str, Any] = field(default_factory=dict)   # run.json
    metrics: list[str] = field(default_factory=list)     # metric base names present (e.g. si_sdr, pesq_wb)

    @property
    def name(self) -> str:
        return str(self.info.get("name") or self.info.get("spec", {}).get("name") or self.run_dir.name)

    @property
    def synthetic_corpus(self) -> bool:
        """True when run.json says the corpus is the built-in synthetic one (or unknown)."""
        spec = self.info.get("spec") or self.info.get("config") or {}
        corpus = spec.get("corpus", {}) if isinstance(spec, dict) else {}
        name = corpus.get("name") if isinstance(corpus, dict) else None
        return name in (None, "synthetic")


def resolve(run_dir: Path, p: Any) -> Optional[Path]:
    """An absolute path for a path stored in a table (relative ones are relative to the run
    folder); ``None`` for empty values."""
    if p is None or (isinstance(p, float) and np.isnan(p)) or str(p).strip() in ("", "nan", "None"):
        return None
    q = Path(str(p))
    return q if q.is_absolute() else run_dir / q


def detect_metrics(df: pd.DataFrame) -> list[str]:
    """Metric base names: numeric columns ``m`` that have an ``input_m`` or ``delta_m`` partner."""
    found = []
    for c in df.columns:
        c = str(c)
        if c.startswith(("input_", "delta_")) or c.endswith("_error"):
            continue
        if (f"input_{c}" in df or f"delta_{c}" in df) and pd.api.types.is_numeric_dtype(df[c]):
            found.append(c)
    order = {m: i for i, m in enumerate(METRIC_ORDER)}
    return sorted(found, key=lambda m: (order.get(m, 99), m))


def _read_table(run: Path, stem: str, required: bool) -> Optional[pd.DataFrame]:
    pq, csv = run / f"{stem}.parquet", run / f"{stem}.csv"
    try:
        if pq.exists():
            return pd.read_parquet(pq)
        if csv.exists():
            return pd.read_csv(csv)
    except Exception as exc:  # pyarrow / parser errors name no file: add it
        raise DataError(pq if pq.exists() else csv, f"cannot read table: {exc}") from exc
    if required:
        raise DataError(pq, f"no {stem}.parquet or {stem}.csv in run folder {run} (has the run finished scoring?)")
    return None


def load_run(run_dir: str | Path) -> RunData:
    """Load a run folder; raises :class:`DataError` naming the file when results are missing or
    lack the id columns the report needs."""
    run = Path(run_dir)
    if not run.is_dir():
        raise DataError(run, "run folder does not exist")
    res = _read_table(run, "results", required=True)
    need = ["utt_id", "condition_id", "algorithm"]
    missing = [c for c in need if c not in res]
    if missing:
        raise DataError(run / "results.parquet", f"missing id column(s) {missing}")
    if res.empty:
        raise DataError(run / "results.parquet", "results table is empty")
    for c in ("model_id", "model", "fusion"):
        if c not in res:
            res[c] = ""
    res["model_id"] = res["model_id"].fillna("").astype(str)
    if "item_id" not in res:
        res["item_id"] = res["condition_id"].astype(str) + "/" + res["utt_id"].astype(str)
    mix = _read_table(run, "mixtures", required=False)
    enh = _read_table(run, "enhanced", required=False)
    info: dict[str, Any] = {}
    if (run / "run.json").exists():
        try:
            info = json.loads((run / "run.json").read_text())
        except json.JSONDecodeError as exc:
            log.warning("%s: invalid JSON (%s); provenance left out", run / "run.json", exc)
    res = _attach_paths(run, res, mix, enh)
    res = add_system_column(res)
    return RunData(run, res, mix, enh, info, detect_metrics(res))


def _attach_paths(run: Path, res: pd.DataFrame, mix: Optional[pd.DataFrame], enh: Optional[pd.DataFrame]) -> pd.DataFrame:
    """The enhanced-audio and traces paths of each result row (from the enhancement table, per
    (item, model, algorithm) and, with a ``train_seed`` column, per training seed: each seed's
    files are its own) and the mixture paths (per item); the documented layout
    (``enhanced/<model_key>[/seed-<s>]/<algorithm>/<condition_id>/<utt_id>``) where a table did
    not say."""
    out = res.copy()
    on = ["item_id", "model_id", "algorithm"]
    if TRAIN_SEED_COLUMN in out:
        out[TRAIN_SEED_COLUMN] = pd.to_numeric(out[TRAIN_SEED_COLUMN], errors="coerce")
    if enh is not None and {"item_id", "algorithm"}.issubset(enh.columns):
        e = enh.copy()
        if "model_id" not in e:
            e["model_id"] = ""
        e["model_id"] = e["model_id"].fillna("").astype(str)
        keys = on + ([TRAIN_SEED_COLUMN] if TRAIN_SEED_COLUMN in e and TRAIN_SEED_COLUMN in out else [])
        if TRAIN_SEED_COLUMN in keys:  # NaN (a system not trained in the run) matches NaN
            e[TRAIN_SEED_COLUMN] = pd.to_numeric(e[TRAIN_SEED_COLUMN], errors="coerce")
        cols = [c for c in ("enhanced_path", "traces_path") if c in e and c not in out]
        if cols:
            e = e.drop_duplicates(keys)
            out = out.merge(e[[*keys, *cols]], on=keys, how="left")
    if mix is not None and "item_id" in mix:
        cols = [c for c in ("mixture_path", "clean_path", "lips_path", "corruption_path", "fps") if c in mix and c not in out]
        if cols:
            out = out.merge(mix.drop_duplicates("item_id")[["item_id", *cols]], on="item_id", how="left")
    # fall back on the documented layout where a table did not say
    seeds = out[TRAIN_SEED_COLUMN] if TRAIN_SEED_COLUMN in out else pd.Series(np.nan, index=out.index)
    multi = seeds.dropna().nunique() > 1
    for col, ext in (("enhanced_path", ".wav"), ("traces_path", ".npz")):
        if col not in out:
            out[col] = None
        guess = [
            (f"enhanced/{model_key(m)}/" + (f"seed-{int(sd)}/" if multi and sd == sd else "") + f"{a}/{c}/{u}{ext}")
            if m else None
            for m, a, c, u, sd in zip(out["model_id"], out["algorithm"], out["condition_id"], out["utt_id"], seeds)
        ]
        cur = out[col]
        fill = []
        for v, g in zip(cur, guess):
            if resolve(run, v) is None and g is not None and (run / g).exists():
                fill.append(g)
            else:
                fill.append(v)
        out[col] = fill
    for col, name in (("mixture_path", "mixture.wav"), ("clean_path", "clean.wav"), ("lips_path", "lips.npy"),
                      ("corruption_path", "corruption.npy")):
        if col not in out:
            out[col] = [f"mixtures/{c}/{u}/{name}" if (run / "mixtures" / str(c) / str(u) / name).exists() else None
                        for c, u in zip(out["condition_id"], out["utt_id"])]
    return out
