"""Paper-style tables: rows = systems, columns = SNR levels + average, one table per metric.

(Over 400 lines on purpose: every table of the report, sharing the cell formatting and the
Markdown / LaTeX writers.)

Each cell is the mean over training seeds, utterances and conditions with the half-width of its
hierarchical bootstrap CI (training seeds, then utterances: :mod:`benchmark.report.stats`; the
caption states how many of each);
the best system per column is bold (among systems with a model: baselines such as the noisy
input or an oracle, and the reliability diagnostics' controls such as the ``oracle-reliability``
fusion, are shown but not ranked); significance markers say that a system is
significantly *better* than a reference (Wilcoxon signed-rank on paired utterances/conditions,
Holm-corrected over every test of the table, p < alpha). Tables are written as Markdown, LaTeX
(booktabs, ready to ``\\input``) and CSV (long, every number: mean, median, CI, counts, p).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from benchmark.report.stats import DEFAULT_REFERENCES, SEED_COLUMN, has_model_mask, paired_tests, select_systems, summarize
from benchmark.report.style import EXTERNAL_MARK, metric_label

log = logging.getLogger(__name__)

#: significance markers, one per reference system (in the order of the references); a table
#: with more references than symbols numbers the rest "(12)", "(13)", ... so no two share a mark
MARKERS = ["†", "‡", "§", "¶", "#", "‖", "♯", "♭", "♮", "◊", "★"]
LATEX_MARKERS = {"†": r"\dagger", "‡": r"\ddagger", "§": r"\S", "¶": r"\P", "#": r"\#", "‖": r"\Vert",
                 "♯": r"\sharp", "♭": r"\flat", "♮": r"\natural", "◊": r"\lozenge", "★": r"\star"}


def marker(i: int) -> str:
    """The significance marker of the ``i``-th reference (0-based): a symbol of :data:`MARKERS`,
    then ``(i + 1)``."""
    return MARKERS[i] if i < len(MARKERS) else f"({i + 1})"


def latex_markers(marks: str) -> str:
    """A cell's marker string in LaTeX math (symbols mapped, numbered markers kept)."""
    return "".join(LATEX_MARKERS.get(ch, ch if ch.isdigit() or ch in "()" else "") for ch in marks)


AVG = "Avg."
_LONG_KEYS = ("system", "metric", "n", "n_nan", "n_failed", "n_valid", "n_seeds", "n_utterances", "mean", "median",
              "std", "ci_low", "ci_high")


def decimals_of(metric: str) -> int:
    """Digits shown for a metric (3 for intelligibility indices, 2 otherwise)."""
    base = metric.split("_", 1)[1] if metric.startswith(("delta_", "input_")) else metric
    return 3 if base in ("stoi", "estoi") else 2


def _fmt(v: float, d: int) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{d}f}"


def _snr_label(v: object) -> str:
    try:
        f = float(v)
        return f"{f:g} dB"
    except (TypeError, ValueError):
        return str(v)


@dataclass
class PaperTable:
    """A systems x columns table of one metric with its uncertainty and significance."""

    metric: str
    title: str
    systems: list[str]
    columns: list[str]
    mean: pd.DataFrame
    half_ci: pd.DataFrame
    markers: pd.DataFrame
    best: pd.DataFrame             # bool
    counts: pd.DataFrame           # per system (all columns): n, n_nan, n_failed
    long: pd.DataFrame             # every number, for the CSV
    references: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    decimals: int = 2
    n_seeds: int = 1               # most training seeds of a system in the table (baselines: 1)
    n_utterances: int = 0          # most utterances of a system in the table
    external: list[str] = field(default_factory=list)  # outside systems (results' ``external``)

    def row_label(self, s: str) -> str:
        """The rendered name of system ``s``: outside systems are marked ``(external)`` (their
        labels from :func:`benchmark.report.style.add_system_column` already are)."""
        return f"{s} {EXTERNAL_MARK}" if s in self.external and not s.endswith(EXTERNAL_MARK) else s

    def cell(self, s: str, c: str) -> tuple[str, str, bool]:
        """(mean text, CI half-width text, is best)."""
        return _fmt(self.mean.loc[s, c], self.decimals), _fmt(self.half_ci.loc[s, c], self.decimals), bool(self.best.loc[s, c])

    def count_text(self, s: str) -> str:
        n, nn, nf = (int(self.counts.loc[s, k]) for k in ("n", "n_nan", "n_failed"))
        extra = []
        if nn:
            extra.append(f"{nn} NaN")
        if nf:
            extra.append(f"{nf} failed")
        return f"{n}" + (f" ({', '.join(extra)})" if extra else "")

    def legend(self) -> str:
        if self.n_seeds > 1:
            what = (f"hierarchical bootstrap CI ({self.n_seeds} training seeds resampled, then "
                    f"{self.n_utterances} utterances with all their conditions)")
        else:
            what = f"bootstrap CI over {self.n_utterances} utterances (1 training seed)"
        parts = [f"Mean ± half-width of the {self.notes_ci()} {what}; n = rows (NaN/failed rows "
                 "are excluded from the mean). Bold: best system with a model per column."]
        for i, r in enumerate(self.references):
            parts.append(f"{marker(i)}: significantly better than {r} (paired Wilcoxon signed-rank, "
                         "Holm-corrected, p < 0.05)")
        if self.external:
            parts.append(f"Marked {EXTERNAL_MARK}: an outside system (its enhanced files brought in and scored "
                         "here; not trained or run by the suite).")
        parts.extend(self.notes)
        return " ".join(parts)

    def notes_ci(self) -> str:
        return "95%"

    # ---- renderers -------------------------------------------------------------------------
    def to_markdown(self) -> str:
        head = "| System | " + " | ".join(self.columns) + " | n |"
        sep = "|---|" + "---:|" * len(self.columns) + "---:|"
        lines = [f"**{self.title}**", "", head, sep]
        for s in self.systems:
            cells = []
            for c in self.columns:
                m, h, b = self.cell(s, c)
                mk = self.markers.loc[s, c]
                txt = f"**{m}**" if b else m
                cells.append(f"{txt}{mk} ±{h}" if h != "–" else f"{txt}{mk}")
            lines.append(f"| {self.row_label(s)} | " + " | ".join(cells) + f" | {self.count_text(s)} |")
        lines += ["", self.legend(), ""]
        return "\n".join(lines)

    def to_latex(self) -> str:
        def esc(t: str) -> str:
            return (t.replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%").replace("_", r"\_")
                    .replace("#", r"\#").replace("·", r"$\cdot$").replace("±", r"$\pm$").replace("–", "--"))

        cols = "l" + "r" * len(self.columns)
        out = [r"% generated by benchmark.report.tables -- requires \usepackage{booktabs}",
               r"\begin{tabular}{" + cols + "}", r"\toprule",
               "System & " + " & ".join(esc(c) for c in self.columns) + r" \\", r"\midrule"]
        for s in self.systems:
            cells = []
            for c in self.columns:
                m, h, b = self.cell(s, c)
                txt = rf"\textbf{{{m}}}" if b else m
                mk = latex_markers(self.markers.loc[s, c])
                if mk:
                    txt += f"$^{{{mk}}}$"
                if h != "–":
                    txt += rf" {{\scriptsize$\pm${h}}}"
                cells.append(txt.replace("–", "--"))
            out.append(f"{esc(self.row_label(s))} & " + " & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", ""]
        return "\n".join(out)

    def to_csv(self) -> str:
        return self.long.to_csv(index=False)

    def write(self, stem: Path) -> list[Path]:
        """Write ``stem.md``, ``stem.tex`` and ``stem.csv``; return the paths."""
        stem.parent.mkdir(parents=True, exist_ok=True)
        paths = []
        for ext, text in (("md", self.to_markdown()), ("tex", self.to_latex()), ("csv", self.to_csv())):
            p = stem.with_suffix(f".{ext}")
            p.write_text(text)
            paths.append(p)
        return paths


def external_systems(df: pd.DataFrame) -> list[str]:
    """The systems of ``df`` (its ``system`` column) that are outside systems: the results'
    ``external`` column, or ``model == "external"`` in tables written before it existed."""
    if "system" not in df:
        return []
    flag = df["external"].fillna(False).astype(bool) if "external" in df else pd.Series(False, index=df.index)
    if "model" in df:
        flag = flag | (df["model"].astype(str) == "external")
    return sorted(set(df.loc[flag, "system"]))


def paper_table(
    df: pd.DataFrame,
    metric: str,
    *,
    column: str = "snr_db",
    systems: Optional[Sequence[str]] = None,
    references: Sequence[str] = DEFAULT_REFERENCES,
    title: Optional[str] = None,
    n_boot: int = 2000,
    ci: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
    higher_is_better: bool = True,
) -> PaperTable:
    """Build the table of ``metric`` over ``column`` values (+ average) for the systems in ``df``."""
    if metric not in df:
        raise KeyError(f"metric column {metric!r} not in results")
    systems = list(systems) if systems is not None else list(dict.fromkeys(df["system"]))
    present = set(df["system"])
    systems = [s for s in systems if s in present]
    has_col = column in df and df[column].notna().any()
    col_vals = sorted(df[column].dropna().unique()) if has_col else []
    labels = [_snr_label(v) if column == "snr_db" else str(v) for v in col_vals]
    columns = labels + [AVG]
    per = summarize(df, metric, ["system", column], n_boot=n_boot, ci=ci, seed=seed) if has_col else pd.DataFrame()
    avg = summarize(df, metric, ["system"], n_boot=n_boot, ci=ci, seed=seed)
    mean = pd.DataFrame(np.nan, index=systems, columns=columns)
    half = mean.copy()
    long_rows = []
    for r in per.itertuples(index=False):
        rd = r._asdict()
        if rd["system"] not in mean.index:
            continue
        lab = labels[col_vals.index(rd[column])]
        mean.loc[rd["system"], lab] = rd["mean"]
        half.loc[rd["system"], lab] = (rd["ci_high"] - rd["ci_low"]) / 2
        long_rows.append({**{k: rd[k] for k in _LONG_KEYS}, "column": lab})
    counts = pd.DataFrame(0, index=systems, columns=["n", "n_nan", "n_failed"])
    for r in avg.itertuples(index=False):
        rd = r._asdict()
        if rd["system"] not in mean.index:
            continue
        mean.loc[rd["system"], AVG] = rd["mean"]
        half.loc[rd["system"], AVG] = (rd["ci_high"] - rd["ci_low"]) / 2
        counts.loc[rd["system"]] = [rd["n"], rd["n_nan"], rd["n_failed"]]
        long_rows.append({**{k: rd[k] for k in _LONG_KEYS}, "column": AVG})
    # significance (one Holm family per table)
    sub = df[df["system"].isin(systems)]
    refs = select_systems(sub, references)
    markers = pd.DataFrame("", index=systems, columns=columns)
    tests = pd.DataFrame()
    if refs and {"utt_id", "condition_id"}.issubset(sub.columns):
        tcol = sub.copy()
        tcol["tcolumn"] = tcol[column].map({v: (_snr_label(v) if column == "snr_db" else str(v))
                                             for v in tcol[column].dropna().unique()}) if has_col else AVG
        parts = [paired_tests(tcol, metric, references=references, by=["tcolumn"], n_boot=0, ci=ci, seed=seed)] if has_col else []
        tall = tcol.copy()
        tall["tcolumn"] = AVG
        parts.append(paired_tests(tall, metric, references=references, by=["tcolumn"], n_boot=0, ci=ci, seed=seed))
        tests = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(not p.empty for p in parts) else pd.DataFrame()
        if not tests.empty:
            from benchmark.report.stats import holm

            tests["p_holm"] = holm(tests["p"].to_numpy())
            sign = 1 if higher_is_better else -1
            for t in tests.itertuples(index=False):
                td = t._asdict()
                if td["p_holm"] < alpha and sign * td["mean_diff"] > 0 and td["system"] in markers.index:
                    mk = marker(refs.index(td["reference"]))
                    markers.loc[td["system"], td["tcolumn"]] += mk
    has_model = set(df.loc[has_model_mask(df), "system"].unique()) if "model_id" in df else set(systems)
    controls = set()  # the diagnostics' controls (e.g. the oracle-reliability fusion) are never ranked
    if {"system", "fusion"}.issubset(df.columns):
        from benchmark.report.diagnostics import control_of

        controls = {s for s, f in df[["system", "fusion"]].drop_duplicates().itertuples(index=False) if control_of(f)}
    rankable = [s for s in systems if s in has_model and s not in controls] or systems
    best = pd.DataFrame(False, index=systems, columns=columns)
    for c in columns:
        col = mean.loc[rankable, c].dropna()
        if not col.empty:
            b = col.max() if higher_is_better else col.min()
            best.loc[col.index[np.isclose(col.to_numpy(), b)], c] = True
    long = pd.DataFrame(long_rows)
    if not tests.empty:
        tests_csv = tests.rename(columns={"tcolumn": "column"})
        pv = tests_csv.pivot_table(index=["system", "column"], columns="reference", values="p_holm", aggfunc="first")
        pv.columns = [f"p_holm_vs_{c}" for c in pv.columns]
        long = long.merge(pv.reset_index(), on=["system", "column"], how="left")
    title = title or f"{metric_label(metric)} by {'SNR' if column == 'snr_db' else column}"
    in_table = avg[avg["system"].isin(systems)]
    n_seeds = int(in_table["n_seeds"].max()) if not in_table.empty else 1
    n_utts = int(in_table["n_utterances"].max()) if not in_table.empty else 0
    external = [s for s in external_systems(df) if s in systems]
    if len(long) and "system" in long:
        long["external"] = long["system"].isin(external)
    return PaperTable(metric, title, systems, columns, mean, half, markers, best, counts, long, refs,
                      decimals=decimals_of(metric), n_seeds=max(1, n_seeds), n_utterances=n_utts, external=external)


# ---- training seeds and precision ---------------------------------------------------------------

PRECISION_TARGET_DB = 0.25  # the study's target CI half-width of a paired Δ SI-SDR difference


def _seed_label(v: object) -> str:
    try:
        f = float(v)
        return f"seed {int(f)}" if f.is_integer() else f"seed {v}"
    except (TypeError, ValueError):
        return f"seed {v}"


def seed_spread_table(df: pd.DataFrame, metric: str = "delta_si_sdr", *, systems: Optional[Sequence[str]] = None,
                      seed_col: str = SEED_COLUMN, higher_is_better: bool = True) -> pd.DataFrame:
    """Per system trained with two or more seeds: the mean of ``metric`` over all its rows of
    each training seed (one column per seed), the mean of those seed means, the between-seed SD
    (ddof 1) and the range, and its rank among these systems in each seed (1 = best), so a
    reader sees whether a ranking survives retraining. Empty when no system has two seeds
    (rows with an empty seed -- the untrained baselines -- are left out)."""
    if seed_col not in df or metric not in df or "system" not in df:
        return pd.DataFrame()
    d = df[df[seed_col].notna()]
    d = d.assign(_v=pd.to_numeric(d[metric], errors="coerce"))
    if d.empty or d.groupby("system")[seed_col].nunique().max() < 2:
        return pd.DataFrame()
    per = d.groupby(["system", seed_col])["_v"].mean().unstack(seed_col)
    per = per[per.notna().sum(axis=1) >= 2]
    order = [s for s in (systems if systems is not None else per.index) if s in per.index]
    per = per.loc[order]
    ranks = per.rank(axis=0, ascending=not higher_is_better, method="min")
    out = pd.DataFrame({"system": order})
    for c in per.columns:
        out[_seed_label(c)] = per[c].to_numpy()
    out["mean_of_seeds"] = per.mean(axis=1).to_numpy()
    out["between_seed_sd"] = per.std(axis=1, ddof=1).to_numpy()
    out["range"] = (per.max(axis=1) - per.min(axis=1)).to_numpy()
    out["rank_per_seed"] = [" / ".join("–" if not np.isfinite(r) else str(int(r)) for r in row)
                            for row in ranks.to_numpy()]
    out["n_seeds"] = per.notna().sum(axis=1).to_numpy()
    return out


def headline_tests(df: pd.DataFrame, metric: str = "delta_si_sdr", *, references: Sequence[str] = DEFAULT_REFERENCES,
                   systems: Optional[Sequence[str]] = None, n_boot: int = 2000, ci: float = 0.95,
                   seed: int = 0) -> pd.DataFrame:
    """:func:`paired_tests` of every system against the references in each headline condition --
    clean video (``corruption == "none"``; every row when the run has no clean video) at each SNR,
    pooled over noise types -- and over all conditions (column ``tcolumn`` names which), with the
    CI ``half_width``; the long table behind :func:`precision_table` and :func:`difference_table`."""
    if metric not in df or not {"utt_id", "condition_id"}.issubset(df.columns):
        return pd.DataFrame()
    sub = df if systems is None else df[df["system"].isin(list(systems))]
    head = sub
    if "corruption" in sub and (sub["corruption"].astype(str) == "none").any():
        head = sub[sub["corruption"].astype(str) == "none"]
    parts = []
    if "snr_db" in head and head["snr_db"].notna().any():
        h = head.assign(tcolumn=head["snr_db"].map({v: f"clean video, {_snr_label(v)}" for v in head["snr_db"].dropna().unique()}))
        parts.append(paired_tests(h, metric, references=references, by=["tcolumn"], n_boot=n_boot, ci=ci, seed=seed))
    allc = sub.assign(tcolumn="all conditions")
    parts.append(paired_tests(allc, metric, references=references, by=["tcolumn"], n_boot=n_boot, ci=ci, seed=seed))
    t = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(not p.empty for p in parts) else pd.DataFrame()
    if not t.empty:
        t["half_width"] = (t["diff_ci_high"] - t["diff_ci_low"]) / 2
    return t


def _headline_wide(t: pd.DataFrame, values: str, systems: Optional[Sequence[str]]) -> tuple[pd.DataFrame, list[str]]:
    """``t`` (:func:`headline_tests`) pivoted to one row per (system, reference), one column per
    headline condition (SNRs ascending, then "all conditions"); and the headline columns."""
    cols = list(dict.fromkeys(t["tcolumn"]))
    snr_cols = [c for c in cols if c != "all conditions"]
    snr_cols.sort(key=lambda c: float(c.split(", ")[1].split()[0]))
    wide = t.pivot_table(index=["system", "reference"], columns="tcolumn", values=values, aggfunc="first", sort=False)
    wide = wide.reindex(columns=snr_cols + [c for c in cols if c == "all conditions"]).reset_index()
    order = {s: i for i, s in enumerate(systems if systems is not None else dict.fromkeys(t["system"]))}
    wide = wide.sort_values(["reference", "system"], key=lambda c: c.map(lambda v: order.get(v, 1e9))).reset_index(drop=True)
    wide.columns.name = None
    return wide, snr_cols or ["all conditions"]


def precision_table(df: pd.DataFrame, metric: str = "delta_si_sdr", *, references: Sequence[str] = DEFAULT_REFERENCES,
                    systems: Optional[Sequence[str]] = None, target: float = PRECISION_TARGET_DB,
                    n_boot: int = 2000, ci: float = 0.95, seed: int = 0,
                    tests: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Achieved precision: per (system, reference) pair of :func:`paired_tests`, the half-width
    of the hierarchical bootstrap CI of the mean paired difference of ``metric`` in each
    headline condition (:func:`headline_tests`; pass its result as ``tests`` to reuse it) and over
    all conditions; then the largest headline half-width, whether it meets ``target`` (dB), and the
    training seeds and utterances the CIs rest on. Empty when there is nothing to pair."""
    t = tests if tests is not None else headline_tests(df, metric, references=references, systems=systems,
                                                       n_boot=n_boot, ci=ci, seed=seed)
    if t.empty:
        return pd.DataFrame()
    wide, head_cols = _headline_wide(t, "half_width", systems)
    wide["max_half_width"] = wide[head_cols].max(axis=1)
    wide[f"meets_{target:g}_dB"] = np.where(wide["max_half_width"] <= target, "yes", "no")
    counts = t.groupby(["system", "reference"], sort=False)[["n_seeds", "n_utterances"]].max()
    return wide.merge(counts.reset_index(), on=["system", "reference"], how="left")


def difference_table(tests: pd.DataFrame, *, systems: Optional[Sequence[str]] = None, alpha: float = 0.05,
                     decimals: int = 2) -> pd.DataFrame:
    """The mean paired difference of each system vs each reference in every headline condition
    of ``tests`` (:func:`headline_tests`), as ``"+0.31 [-0.05, +0.67]"`` (mean, CI of the
    hierarchical bootstrap); ``*`` marks a Holm-corrected Wilcoxon p < ``alpha``. Answers "how much
    does system X gain over reference Y, and is it more than the noise of the study". Empty when
    ``tests`` is."""
    if tests is None or tests.empty:
        return pd.DataFrame()

    def cell(r: pd.Series) -> str:
        if not np.isfinite(r["mean_diff"]):
            return "–"
        lo, hi = r["diff_ci_low"], r["diff_ci_high"]
        ci_s = f" [{lo:+.{decimals}f}, {hi:+.{decimals}f}]" if np.isfinite(lo) and np.isfinite(hi) else ""
        star = "*" if np.isfinite(r.get("p_holm", np.nan)) and r["p_holm"] < alpha else ""
        return f"{r['mean_diff']:+.{decimals}f}{ci_s}{star}"

    t = tests.assign(cell=tests.apply(cell, axis=1))
    wide, _ = _headline_wide(t, "cell", systems)
    return wide


# ---- generic small tables ----------------------------------------------------------------------

def frame_to_markdown(df: pd.DataFrame, floatfmt: str = ".3f", title: Optional[str] = None) -> str:
    """A plain Markdown table of a DataFrame (NaN shown as –)."""
    def f(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return "–" if not math.isfinite(v) else format(v, floatfmt)
        return "–" if v is None else str(v)

    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(map(str, df.columns)) + " |")
    lines.append("|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|")
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(f(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def frame_to_latex(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A booktabs LaTeX tabular of a DataFrame."""
    def f(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return "--" if not math.isfinite(v) else format(v, floatfmt)
        s = "--" if v is None else str(v)
        return s.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%").replace("·", r"$\cdot$")

    cols = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    out = [r"\begin{tabular}{" + cols + "}", r"\toprule", " & ".join(f(str(c)) for c in df.columns) + r" \\", r"\midrule"]
    for row in df.itertuples(index=False):
        out.append(" & ".join(f(v) for v in row) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)


def write_frame(df: pd.DataFrame, stem: Path, *, floatfmt: str = ".3f", title: Optional[str] = None) -> list[Path]:
    """Write a DataFrame as ``stem.md``, ``stem.tex``, ``stem.csv``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext, text in (("md", frame_to_markdown(df, floatfmt, title)), ("tex", frame_to_latex(df, floatfmt)),
                      ("csv", df.to_csv(index=False))):
        p = stem.with_suffix(f".{ext}")
        p.write_text(text)
        out.append(p)
    return out


# ---- efficiency --------------------------------------------------------------------------------

def fusion_costs(fusions: Sequence[str]) -> pd.DataFrame:
    """Parameters and MACs per frame of each fusion (``models.fusion`` at default widths), or an
    empty table when the models package cannot be imported."""
    names = [f for f in dict.fromkeys(fusions) if isinstance(f, str) and f.strip()]
    if not names:
        return pd.DataFrame()
    try:
        from models.fusion import build_fusion
    except Exception as exc:  # models not importable (e.g. partial checkout)
        log.warning("fusion costs left out: cannot import models.fusion (%s)", exc)
        return pd.DataFrame()
    rows = []
    for n in names:
        try:
            c = build_fusion(n).cost_per_frame()
            rows.append({"fusion": n, "fusion_params": int(c["params"]), "fusion_macs_per_frame": int(c["macs"])})
        except Exception as exc:
            log.warning("fusion %r: cost unavailable (%s)", n, exc)
    return pd.DataFrame(rows)


def efficiency_table(df: pd.DataFrame, *, quality_metric: str = "delta_si_sdr", systems: Optional[Sequence[str]] = None,
                     costs: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Per system: fusion params and MACs/frame (when known), mean enhancement RTF and wall time,
    and the mean of ``quality_metric``."""
    g = df.groupby("system", sort=False)
    out = pd.DataFrame({"system": list(g.groups)})
    first = g.first()
    for c in ("model_id", "fusion", "algorithm"):
        if c in df:
            out[c] = out["system"].map(first[c])
    if "rtf" in df:
        out["rtf"] = out["system"].map(g["rtf"].apply(lambda s: pd.to_numeric(s, errors="coerce").mean()))
    if "wall_time_s" in df:
        out["wall_time_s"] = out["system"].map(g["wall_time_s"].apply(lambda s: pd.to_numeric(s, errors="coerce").mean()))
    if quality_metric in df:
        out[quality_metric] = out["system"].map(g[quality_metric].apply(lambda s: pd.to_numeric(s, errors="coerce").mean()))
    if costs is None and "fusion" in out:
        costs = fusion_costs(out["fusion"].dropna().tolist())
    if costs is not None and not costs.empty and "fusion" in out:
        out = out.merge(costs, on="fusion", how="left")
    if systems is not None:
        order = {s: i for i, s in enumerate(systems)}
        out = out.sort_values("system", key=lambda c: c.map(lambda s: order.get(s, 1e9))).reset_index(drop=True)
    return out
