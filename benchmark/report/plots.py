"""Report figures (matplotlib Agg + seaborn), each saved as PNG and PDF.

Every function takes the palette of :func:`benchmark.report.style.report_palette`, so a system
has one colour in every figure, and returns the list of files written (empty when the data
needed is absent -- a figure is skipped, never faked).

(Over 400 lines on purpose: one function per figure of the report, sharing one style context; a
figure is easier to find here than spread over modules.)
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from benchmark.report.stats import summarize
from benchmark.report.style import apply_style, colour_of, metric_label

log = logging.getLogger(__name__)

# figure formats for the figures of the report being written (set by write_report through
# figure_formats(); a context variable, so concurrent reports do not share it)
_formats: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("figure_formats", default=("png", "pdf"))


@contextlib.contextmanager
def figure_formats(formats: Sequence[str]):
    """Within the block, :func:`save` writes ``formats`` (png always included)."""
    token = _formats.set(tuple(formats))
    try:
        yield
    finally:
        _formats.reset(token)


def _plt():
    apply_style()
    import matplotlib.pyplot as plt

    return plt


FORMATS = ("png", "pdf", "svg")


def save(fig, stem: Path, formats: Sequence[str] | None = None, dpi: float | None = None) -> list[Path]:
    """Save ``fig`` as ``stem.png`` (always, first) plus the other ``formats`` (default: the
    ``AVBENCH_FIGURE_FORMATS``-free default ``png, pdf``) and close it. ``dpi``: the raster
    resolution (default: the style's ``savefig.dpi``)."""
    plt = _plt()
    stem.parent.mkdir(parents=True, exist_ok=True)
    formats = list(formats) if formats is not None else list(_formats.get())
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown figure format(s) {bad}; choose from {', '.join(FORMATS)}")
    out = []
    for ext in ["png"] + [f for f in formats if f != "png"]:
        p = stem.with_suffix(f".{ext}")
        fig.savefig(p, **({"dpi": dpi} if dpi else {}))
        out.append(p)
    plt.close(fig)
    return out


def _legend_outside(fig, ax, ncol: int | None = None) -> None:
    h, lab = ax.get_legend_handles_labels()
    if h:
        fig.legend(h, lab, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol or min(4, len(h)), frameon=False)


def _lines_with_ci(ax, summ: pd.DataFrame, x: str, order: Sequence[str], pal: Mapping[str, str], *, dashed=()) -> None:
    for s in order:
        g = summ[summ["system"] == s].sort_values(x)
        if g.empty or g["mean"].isna().all():
            continue
        c = colour_of(pal, s)
        ls = "--" if s in dashed else "-"
        ax.plot(g[x], g["mean"], marker="o", ms=4, lw=1.8, color=c, ls=ls, label=s)
        ax.fill_between(g[x].astype(float), g["ci_low"], g["ci_high"], color=c, alpha=0.15, lw=0)


def _baselines(df: pd.DataFrame) -> set[str]:
    if "model_id" not in df:
        return set()
    return set(df.loc[df["model_id"].astype(str).str.strip() == "", "system"])


def metric_vs_snr(df: pd.DataFrame, metric: str, pal: Mapping[str, str], order: Sequence[str], stem: Path, *,
                  facet: Optional[str] = None, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> list[Path]:
    """Mean ``metric`` vs SNR per system with CI bands; one panel per ``facet`` value if given
    (e.g. ``facet="noise"``). Baselines without a model are dashed."""
    if metric not in df or "snr_db" not in df or df[metric].notna().sum() == 0:
        return []
    plt = _plt()
    facets = sorted(df[facet].dropna().unique()) if facet and facet in df else [None]
    fig, axes = plt.subplots(1, len(facets), figsize=(4.2 * len(facets) + 0.8, 3.6), sharey=True, squeeze=False)
    base = _baselines(df)
    for ax, fv in zip(axes[0], facets):
        sub = df if fv is None else df[df[facet] == fv]
        summ = summarize(sub, metric, ["system", "snr_db"], n_boot=n_boot, ci=ci, seed=seed)
        _lines_with_ci(ax, summ, "snr_db", order, pal, dashed=base)
        ax.set_xlabel("input SNR (dB)")
        ax.set_title(f"{facet}: {fv}" if fv is not None else metric_label(metric), fontsize=11)
        snrs = sorted(sub["snr_db"].dropna().unique())
        ax.set_xticks(snrs)
        if metric.startswith("delta_"):
            ax.axhline(0, color="#999", lw=0.8, zorder=0)
    axes[0][0].set_ylabel(metric_label(metric))
    _legend_outside(fig, axes[0][0])
    fig.tight_layout()
    return save(fig, stem)


def robustness_curves(df: pd.DataFrame, metric: str, pal: Mapping[str, str], order: Sequence[str], stem: Path, *,
                      n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> list[Path]:
    """Mean ``metric`` vs visual-corruption severity, one panel per corruption kind (the clean
    video, severity 0, starts every curve); systems with a model only."""
    need = {"corruption", "severity", metric}
    if not need.issubset(df.columns):
        return []
    kinds = sorted(k for k in df["corruption"].dropna().astype(str).unique() if k != "none")
    if not kinds:
        return []
    sub = df[~df["system"].isin(_baselines(df))]
    if sub.empty:
        return []
    plt = _plt()
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.9 * len(kinds) + 0.8, 3.6), sharey=True, squeeze=False)
    clean = sub[sub["corruption"].astype(str) == "none"].copy()
    clean["severity"] = 0.0
    for ax, k in zip(axes[0], kinds):
        part = pd.concat([clean, sub[sub["corruption"].astype(str) == k]], ignore_index=True)
        part["severity"] = pd.to_numeric(part["severity"], errors="coerce")
        summ = summarize(part, metric, ["system", "severity"], n_boot=n_boot, ci=ci, seed=seed)
        _lines_with_ci(ax, summ, "severity", order, pal)
        ax.set_title(k, fontsize=11)
        ax.set_xlabel("corruption severity")
        ax.set_xticks(sorted(part["severity"].dropna().unique()))
    axes[0][0].set_ylabel(metric_label(metric))
    _legend_outside(fig, axes[0][0])
    fig.suptitle("Robustness to corrupted video", fontweight="bold", y=1.02)
    fig.tight_layout()
    return save(fig, stem)


def weight_distributions(frames: pd.DataFrame, pal: Mapping[str, str], order: Sequence[str], stem: Path) -> list[Path]:
    """Per-frame visual weights: by corruption level of the frame (left) and by SNR for frames
    of clean-video conditions (right); one box per system."""
    if frames is None or frames.empty:
        return []
    import seaborn as sns

    plt = _plt()
    systems = [s for s in order if s in set(frames["system"])]
    colours = [colour_of(pal, s) for s in systems]
    f = frames.copy()
    f["frame corruption"] = f["corruption_level"].map(lambda v: "clean" if v <= 0 else f"{v:g}")
    lev = ["clean"] + sorted((x for x in f["frame corruption"].unique() if x != "clean"), key=float)
    has_snr = "snr_db" in f and f["snr_db"].nunique() > 0
    fig, axes = plt.subplots(1, 2 if has_snr else 1, figsize=(11.5 if has_snr else 6, 3.8), squeeze=False)
    kw = dict(hue="system", hue_order=systems, palette=colours, showfliers=False, linewidth=0.9, width=0.75)
    sns.boxplot(data=f, x="frame corruption", y="visual_weight", order=lev, ax=axes[0][0], **kw)
    axes[0][0].set_title("by corruption of the frame", fontsize=11)
    axes[0][0].set_ylabel("visual weight")
    if has_snr:
        cv = f[f["corruption"].astype(str) == "none"] if "corruption" in f else f
        if cv.empty:
            cv = f
        cv = cv.assign(snr=cv["snr_db"].map(lambda v: f"{v:g} dB"))
        so = [f"{v:g} dB" for v in sorted(cv["snr_db"].unique())]
        sns.boxplot(data=cv, x="snr", y="visual_weight", order=so, ax=axes[0][1], **kw)
        axes[0][1].set_title("by input SNR (clean video)", fontsize=11)
        axes[0][1].set_xlabel("input SNR")
        axes[0][1].set_ylabel("")
    for ax in axes[0]:
        ax.set_ylim(-0.02, 1.02)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    _legend_outside(fig, axes[0][0])
    fig.tight_layout()
    return save(fig, stem)


def research_question(rel: pd.DataFrame, pal: Mapping[str, str], order: Sequence[str], stem: Path) -> list[Path]:
    """One chart for every system with a model: left, the AUCs of its visual weight (bars: the
    frame-paired ``auc_paired``, the headline, free of frame-content confounds; open diamonds:
    the within-utterance ``auc_within`` beside it; both with CIs, see
    :mod:`benchmark.report.diagnostics`; "no weights" when it has none); right, the drop of
    SI-SDR improvement from clean to fully corrupted video (with CI). The diagnostics' controls
    (the ``control`` column, e.g. the oracle) are hatched and named as controls."""
    if rel is None or rel.empty or not ({"auc_paired", "auc_within", "si_sdr_drop"} & set(rel.columns)):
        return []
    plt = _plt()
    systems = [s for s in order if s in set(rel["system"])]
    r = rel.set_index("system").reindex(systems)
    y = np.arange(len(systems))[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 0.48 * len(systems) + 1.6), sharey=True)
    cols = [colour_of(pal, s) for s in systems]
    control = {s: str(r.loc[s, "control"]) if "control" in r and isinstance(r.loc[s, "control"], str) else "" for s in systems}

    def val(s: str, col: str) -> float:
        return float(r.loc[s, col]) if col in r and pd.notna(r.loc[s, col]) else float("nan")

    ax = axes[0]
    for yi, s, c in zip(y, systems, cols):
        a, lo, hi = val(s, "auc_paired"), val(s, "auc_paired_ci_low"), val(s, "auc_paired_ci_high")
        w, wlo, whi = val(s, "auc_within"), val(s, "auc_within_ci_low"), val(s, "auc_within_ci_high")
        if np.isfinite(a):
            ax.barh(yi, a - 0.5, left=0.5, color=c, height=0.62, hatch="//" if control[s] else None)
            if np.isfinite(lo):
                ax.errorbar(a, yi, xerr=[[a - lo], [hi - a]], color="#222", capsize=3, lw=1)
            ax.text(max(a, hi if np.isfinite(hi) else a, whi if np.isfinite(whi) else a) + 0.01, yi,
                    f"{a:.2f}" + (f" (within {w:.2f})" if np.isfinite(w) else ""), va="center", fontsize=8.5)
        if np.isfinite(w):  # the within-utterance AUC beside it, slightly below the bar's centre
            if np.isfinite(wlo):
                ax.errorbar(w, yi - 0.2, xerr=[[w - wlo], [whi - w]], color="#777", capsize=2, lw=0.8)
            ax.plot(w, yi - 0.2, "D", mfc="white", mec="#222", ms=5, zorder=4)
        if not np.isfinite(a) and not np.isfinite(w):
            why = "no weights" if "weights" not in r or r.loc[s, "weights"] == "no weights" else "no corrupted frames"
            ax.text(0.51, yi, why, va="center", fontsize=9, color="#777", style="italic")
        elif not np.isfinite(a):
            ax.text(0.51, yi + 0.2, "no paired frames", va="center", fontsize=8, color="#777", style="italic")
    ax.axvline(0.5, color="#555", lw=0.9)
    lows = [val(s, k) for s in systems for k in ("auc_paired_ci_low", "auc_within_ci_low", "auc_paired", "auc_within")]
    ax.set_xlim(min([0.35] + [v - 0.05 for v in lows if np.isfinite(v)]), 1.08)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="#999", label="paired: same frames, clean vs corrupted video"),
                       Line2D([], [], marker="D", ls="", mfc="white", mec="#222", label="within utterance: clean vs corrupted frames")],
              fontsize=7.5, loc="lower left", frameon=False, bbox_to_anchor=(0, 1.06), borderaxespad=0)
    ax.set_xlabel("ROC AUC of the visual weight\n(0.5 = blind to corruption, 1 = perfect)")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{s}\n[{control[s]}]" if control[s] else s for s in systems])
    ax.set_title("Do the weights see the corruption?", fontsize=11, pad=60)
    ax = axes[1]
    if "si_sdr_drop" in r:
        for yi, s, c in zip(y, systems, cols):
            d = r.loc[s, "si_sdr_drop"]
            if np.isfinite(d):
                lo, hi = r.loc[s, "drop_ci_low"], r.loc[s, "drop_ci_high"]
                ax.barh(yi, d, color=c, height=0.62, hatch="//" if control[s] else None)
                if np.isfinite(lo):
                    ax.errorbar(d, yi, xerr=[[d - lo], [hi - d]], color="#222", capsize=3, lw=1)
    ax.axvline(0, color="#555", lw=0.9)
    ax.set_xlabel("drop of ΔSI-SDR (dB), clean → fully corrupted video\n(smaller = more robust)")
    ax.set_title("What does corrupted video cost?", fontsize=11, pad=60)
    fig.suptitle("Reliability weights vs robustness", fontweight="bold")
    fig.tight_layout()
    return save(fig, stem)


def quality_vs_compute(eff: pd.DataFrame, pal: Mapping[str, str], order: Sequence[str], stem: Path, *,
                       quality: str = "delta_si_sdr") -> list[Path]:
    """Quality (mean ``quality``) vs enhancement RTF, and vs fusion MACs/frame when known."""
    if eff is None or eff.empty or quality not in eff or "rtf" not in eff:
        return []
    e = eff[np.isfinite(pd.to_numeric(eff["rtf"], errors="coerce")) & (pd.to_numeric(eff["rtf"], errors="coerce") > 0)]
    if e.empty:
        return []
    plt = _plt()
    has_macs = "fusion_macs_per_frame" in e and e["fusion_macs_per_frame"].notna().any()
    fig, axes = plt.subplots(1, 2 if has_macs else 1, figsize=(10 if has_macs else 5.5, 3.9), squeeze=False)
    panels = [("rtf", "enhancement real-time factor (log)")] + ([("fusion_macs_per_frame", "fusion MACs per frame (log)")] if has_macs else [])
    for ax, (col, lab) in zip(axes[0], panels):
        for s in order:
            row = e[e["system"] == s]
            if row.empty or not np.isfinite(row[col].iloc[0]) or not np.isfinite(row[quality].iloc[0]):
                continue
            ax.scatter(row[col], row[quality], s=80, color=colour_of(pal, s), edgecolor="white", lw=0.8, label=s, zorder=3)
        ax.set_xscale("log")
        ax.set_xlabel(lab)
    axes[0][0].set_ylabel(metric_label(quality))
    fig.suptitle("Quality vs compute", fontweight="bold")
    _legend_outside(fig, axes[0][0])
    fig.tight_layout()
    return save(fig, stem)


def _spec_db(x: np.ndarray) -> np.ndarray:
    from models.spectral import power_spectrogram

    p = power_spectrogram(np.asarray(x, dtype=np.float32)).numpy()
    return 10 * np.log10(p + 1e-10)


#: raster resolution of the example spectrogram figures
SPECTROGRAM_DPI = 100


def spectrogram_panels(example: Mapping[str, np.ndarray], title: str, pal: Mapping[str, str], stem: Path, *,
                       sr: int = 16000, hop: int = 256) -> list[Path]:
    """Spectrograms of an example: ``example`` maps a panel label (``clean``, ``noisy``, then each
    system) to its waveform."""
    if not example:
        return []
    plt = _plt()
    names = list(example)
    specs = {k: _spec_db(v) for k, v in example.items()}
    vmax = max(float(np.percentile(s, 99.5)) for s in specs.values())
    ncol = 2 if len(names) > 4 else 1
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.2 * ncol, 1.75 * nrow + 0.8), squeeze=False, sharex=True, sharey=True)
    im = None
    for ax, k in zip(axes.flat, names):
        S = specs[k]
        T, F = S.shape
        im = ax.imshow(S.T, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80, vmax=vmax,
                       extent=(0, T * hop / sr, 0, sr / 2000))
        ax.set_title(k, fontsize=10, color=colour_of(pal, k) if k in pal else "#222", loc="left")
        ax.grid(False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("kHz")
    for ax in axes[-1, :]:
        ax.set_xlabel("time (s)")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, pad=0.01, label="dB")
    # 100 dpi: a spectrogram panel has 188 x 513 values per 3 s, so the style's 150 dpi only makes
    # the PNG (and the HTML that embeds it) larger (10 panels: 2.1 MB at 150 dpi)
    return save(fig, stem, dpi=SPECTROGRAM_DPI)


def weight_trace_example(lips: Optional[np.ndarray], lip_corruption: Optional[np.ndarray], fps: float,
                         noisy: np.ndarray, traces: Mapping[str, tuple[np.ndarray, np.ndarray, float]],
                         title: str, pal: Mapping[str, str], stem: Path, *, sr: int = 16000, hop: int = 256,
                         n_lip_frames: int = 10) -> list[Path]:
    """Lip frames (red border = corrupted), the noisy spectrogram, and the visual weight of every
    system over time (``traces``: system -> (weight [T], corruption_level [T], frame_rate)),
    corrupted frames shaded."""
    if not traces:
        return []
    plt = _plt()
    S = _spec_db(noisy)
    dur = len(noisy) / sr
    has_lips = lips is not None and len(lips) > 0
    heights = ([1.1] if has_lips else []) + [1.6, 1.9]
    fig, axes = plt.subplots(len(heights), 1, figsize=(10, sum(heights) + 1.2), gridspec_kw={"height_ratios": heights},
                             squeeze=False)
    axes = axes[:, 0]
    i = 0
    if has_lips:
        ax = axes[0]
        idx = np.linspace(0, len(lips) - 1, min(n_lip_frames, len(lips))).round().astype(int)
        h, w = lips.shape[1:3]
        strip = np.full((h + 4, len(idx) * (w + 4)), 255, dtype=np.uint8)
        rgb = np.stack([strip] * 3, axis=-1)
        for j, k in enumerate(idx):
            x0 = j * (w + 4)
            bad = lip_corruption is not None and k < len(lip_corruption) and lip_corruption[k] > 0
            border = (214, 39, 40) if bad else (255, 255, 255)
            rgb[:, x0:x0 + w + 4] = border
            rgb[2:2 + h, x0 + 2:x0 + 2 + w] = np.stack([lips[k]] * 3, axis=-1)
        ax.imshow(rgb, aspect="equal")
        ax.set_xticks([(j * (w + 4)) + (w + 4) / 2 for j in range(len(idx))])
        ax.set_xticklabels([f"{k / fps:.2f}s" for k in idx], fontsize=8)
        ax.set_yticks([])
        ax.grid(False)
        ax.set_title("lip frames (red border: corrupted)", fontsize=10, loc="left")
        i = 1
    # shading from the first trace's corruption levels
    first = next(iter(traces.values()))
    level, fr = first[1], first[2]
    spans = []
    on = None
    for t, v in enumerate(np.append(level, 0)):
        if v > 0 and on is None:
            on = t
        elif v <= 0 and on is not None:
            spans.append((on / fr, t / fr))
            on = None
    ax = axes[i]
    vmax = float(np.percentile(S, 99.5))
    ax.imshow(S.T, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80, vmax=vmax, extent=(0, dur, 0, sr / 2000))
    ax.set_ylabel("kHz")
    ax.tick_params(labelbottom=False)
    ax.set_title("noisy input", fontsize=10, loc="left")
    ax.grid(False)
    for a, b in spans:
        ax.axvspan(a, b, ymin=0.96, ymax=1.0, color="#d62728", lw=0)
    ax = axes[i + 1]
    for a, b in spans:
        ax.axvspan(a, b, color="#d62728", alpha=0.12, lw=0)
    for s, (w, lev, fr_s) in traces.items():
        ax.plot(np.arange(len(w)) / fr_s, w, color=colour_of(pal, s), lw=1.6, label=s)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, dur)
    ax.set_ylabel("visual weight")
    ax.set_xlabel("time (s)")
    ax.set_title("visual weight per frame (shaded: corrupted video)", fontsize=10, loc="left")
    axes[i].set_xlim(0, dur)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=min(4, len(traces)), frameon=False)
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return save(fig, stem)


def seed_strip(spread: pd.DataFrame, pal: Mapping[str, str], order: Sequence[str], stem: Path, *,
               metric: str = "delta_si_sdr") -> list[Path]:
    """Strip plot of the spread between training seeds: one row per system of
    :func:`benchmark.report.tables.seed_spread_table` (``spread``), one dot per seed (its mean
    ``metric`` over all utterances and conditions), a bar at the mean of the seed means and a
    line of ± one between-seed SD. Nothing (``[]``) with fewer than two seeds."""
    if spread is None or spread.empty:
        return []
    seed_cols = [c for c in spread.columns if str(c).startswith("seed ")]
    if len(seed_cols) < 2:
        return []
    plt = _plt()
    systems = [s for s in order if s in set(spread["system"])] or list(spread["system"])
    sp = spread.set_index("system").reindex(systems)
    y = np.arange(len(systems))[::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(systems) + 1.4))
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    for yi, s in zip(y, systems):
        c = colour_of(pal, s)
        m, sd = sp.loc[s, "mean_of_seeds"], sp.loc[s, "between_seed_sd"]
        if np.isfinite(sd):
            ax.plot([m - sd, m + sd], [yi, yi], color=c, lw=2.2, alpha=0.35, solid_capstyle="butt")
        ax.plot([m, m], [yi - 0.3, yi + 0.3], color=c, lw=2)
        for j, col in enumerate(seed_cols):
            v = sp.loc[s, col]
            if np.isfinite(v):
                ax.scatter(v, yi + (j - (len(seed_cols) - 1) / 2) * 0.08, s=30, color=c, edgecolor="white", lw=0.6,
                           marker=markers[j % len(markers)], zorder=3)
    for j, col in enumerate(seed_cols):  # legend: the marker of each seed, in grey
        ax.scatter([], [], s=30, color="#555", marker=markers[j % len(markers)], label=col)
    ax.set_yticks(y)
    ax.set_yticklabels(systems)
    ax.set_xlabel(f"{metric_label(metric)}: mean per training seed")
    ax.set_title("Spread between training seeds (dots: seeds; bar: mean; band: ± between-seed SD)", fontsize=10.5)
    _legend_outside(fig, ax, ncol=min(len(seed_cols), 8))
    fig.tight_layout()
    return save(fig, stem)
