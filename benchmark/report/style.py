"""Figure style and system naming shared by every table and plot of a report.

A *system* is one row of a paper table: a speech model (with its fusion) run with one
enhancement algorithm, or a baseline algorithm without a model. :func:`system_labels` names
them and :func:`palette` gives each one colour that every figure of the report reuses.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import pandas as pd

SYSTEM_COLUMN = "system"

# Colour-blind-friendly qualitative colours (Okabe-Ito first, then Tableau-like extras).
_COLOURS = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C564B", "#F0E442",
    "#332288", "#882255", "#44AA99", "#999933", "#AA4499", "#117733", "#DDCC77", "#88CCEE",
]
_GREYS = ["#4D4D4D", "#8C8C8C", "#B3B3B3", "#2B2B2B"]

METRIC_LABELS = {
    "si_sdr": "SI-SDR (dB)", "sdr": "SDR (dB)", "pesq_wb": "PESQ (WB)", "pesq_nb": "PESQ (NB)",
    "pesq": "PESQ", "stoi": "STOI", "estoi": "ESTOI",
}
METRIC_SHORT = {
    "si_sdr": "SI-SDR", "sdr": "SDR", "pesq_wb": "PESQ-WB", "pesq_nb": "PESQ-NB", "pesq": "PESQ",
    "stoi": "STOI", "estoi": "ESTOI",
}
METRIC_ORDER = ["si_sdr", "pesq_wb", "pesq_nb", "pesq", "stoi", "estoi", "sdr"]


def _text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and math.isnan(v):
        return ""
    return str(v).strip()


def system_label(model_id: object, algorithm: object, *, with_algorithm: bool = True) -> str:
    """Label of one system: ``"<model_id> · <algorithm>"``, or the algorithm alone when there is
    no model (a baseline), or the model alone when ``with_algorithm`` is false."""
    m, a = _text(model_id), _text(algorithm)
    if not m:
        return a or "?"
    if not a or not with_algorithm:
        return m
    return f"{m} · {a}"


#: the mark of an outside system (results' ``model`` "external") in its system label
EXTERNAL_MARK = "(external)"


def add_system_column(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with a ``system`` column; the algorithm is named only when the models of the
    table were run with more than one algorithm. An outside system (``model`` "external") is
    ``"<model_id> (external)"`` (with its ``algorithm`` label when that is not "external") and
    does not count as an algorithm of the suite's models."""
    out = df.copy()
    model = out["model_id"] if "model_id" in out else pd.Series([""] * len(out), index=out.index)
    algo = out["algorithm"] if "algorithm" in out else pd.Series([""] * len(out), index=out.index)
    ext = out["model"].map(_text) == "external" if "model" in out else pd.Series(False, index=out.index)
    has_model = (model.map(_text) != "") & ~ext
    n_algos = algo[has_model].map(_text).nunique()
    with_algo = n_algos > 1
    out[SYSTEM_COLUMN] = [
        f"{system_label(m, a, with_algorithm=_text(a) != 'external')} {EXTERNAL_MARK}" if x
        else system_label(m, a, with_algorithm=with_algo) for m, a, x in zip(model, algo, ext)]
    return out


def system_order(df: pd.DataFrame) -> list[str]:
    """Systems in a stable reading order: baselines without a model first (in order of first
    appearance sorted by name), then models sorted by their label."""
    if SYSTEM_COLUMN not in df:
        df = add_system_column(df)
    model = df["model_id"].map(_text) if "model_id" in df else pd.Series([""] * len(df), index=df.index)
    base = sorted(set(df.loc[model == "", SYSTEM_COLUMN]))
    models = sorted(set(df.loc[model != "", SYSTEM_COLUMN]))
    return base + models


def palette(systems: Iterable[str], baselines: Iterable[str] = ()) -> dict[str, str]:
    """One colour per system (greys for baselines without a model), stable for a given list."""
    out: dict[str, str] = {}
    bases = [s for s in systems if s in set(baselines)]
    others = [s for s in systems if s not in set(baselines)]
    for i, s in enumerate(bases):
        out[s] = _GREYS[i % len(_GREYS)]
    for i, s in enumerate(others):
        out[s] = _COLOURS[i % len(_COLOURS)]
    return out


def report_palette(df: pd.DataFrame) -> dict[str, str]:
    """The palette of a results table (baselines = systems without a model)."""
    if SYSTEM_COLUMN not in df:
        df = add_system_column(df)
    order = system_order(df)
    model = df["model_id"].map(_text) if "model_id" in df else pd.Series([""] * len(df), index=df.index)
    bases = set(df.loc[model == "", SYSTEM_COLUMN])
    return palette(order, bases)


def metric_label(metric: str) -> str:
    """Axis label of a metric column (``delta_`` prefixed columns read as improvements)."""
    if metric.startswith("delta_"):
        return "Δ " + METRIC_LABELS.get(metric[6:], metric[6:])
    if metric.startswith("input_"):
        return "input " + METRIC_LABELS.get(metric[6:], metric[6:])
    return METRIC_LABELS.get(metric, metric)


def metric_short(metric: str) -> str:
    """Short name of a metric for table titles."""
    base = metric[6:] if metric.startswith(("delta_", "input_")) else metric
    name = METRIC_SHORT.get(base, base)
    if metric.startswith("delta_"):
        return f"Δ{name}"
    return name


def apply_style() -> None:
    """Matplotlib (Agg) + seaborn defaults for every report figure."""
    import logging

    import matplotlib

    logging.getLogger("fontTools").setLevel(logging.WARNING)
    matplotlib.use("Agg", force=True)
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=1.15)
    matplotlib.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "axes.spines.top": False,
        "axes.spines.right": False, "legend.frameon": False, "axes.titleweight": "bold",
        "pdf.fonttype": 42, "ps.fonttype": 42, "font.family": "DejaVu Sans",
    })


def colour_of(pal: Mapping[str, str], system: str) -> str:
    """Colour of ``system`` (a neutral grey for an unknown one)."""
    return pal.get(system, "#777777")
