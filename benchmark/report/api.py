"""``write_report(run_dir, out_dir, spec=None)``: everything the report stage writes.

``out_dir`` receives ``index.html`` (self-contained), ``summary.md``, ``tables/`` (Markdown,
LaTeX booktabs, CSV) and ``figures/`` (PNG + PDF).

(Over 400 lines on purpose: it is the one place that decides which table and figure the report
holds and in which order; the computations live in ``stats``, ``tables``, ``plots`` and
``diagnostics``.)
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmark.report import diagnostics as diag
from benchmark.report import plots
from benchmark.report.html import HtmlReport, esc, frame_table_html, methods_html, metric_methods, paper_table_html
from benchmark.report.runfolder import RunData, load_run, resolve
from benchmark.report.stats import SEED_COLUMN, has_model_mask, paired_tests, select_systems, summarize_many
from benchmark.report.style import metric_label, metric_short, report_palette, system_order
from benchmark.report.models_table import lip_information, training_summary, training_table
from benchmark.report.tables import (PRECISION_TARGET_DB, difference_table, efficiency_table, headline_tests, paper_table,
                                     precision_table,
                                     seed_spread_table, write_frame)
from benchmark.spec import ReportSpec

log = logging.getLogger(__name__)

HEADLINE = ("si_sdr", "pesq_wb", "pesq_nb", "pesq", "stoi", "estoi", "sdr")
#: enhanced systems shown in an example's spectrogram figure (beside clean and noisy); the audio
#: players below it have every system. A study with ~20 systems made a 3.7 MB PNG (and PDF) of it.
MAX_SPECTROGRAM_SYSTEMS = 8


def _report_spec(spec: Any, rd: RunData) -> ReportSpec:
    if isinstance(spec, ReportSpec):
        return spec
    if spec is not None and isinstance(getattr(spec, "report", None), ReportSpec):
        return spec.report
    raw = (rd.info.get("spec") or {}).get("report") if isinstance(rd.info.get("spec"), dict) else None
    if isinstance(raw, dict):
        from benchmark.configtools import from_dict

        try:
            return from_dict(ReportSpec, raw, source=str(rd.run_dir / "run.json"), prefix="report")
        except Exception as exc:  # an older run.json: defaults, and say so
            log.warning("run.json report settings not usable (%s); using defaults", exc)
    return ReportSpec()


@dataclass
class _Ctx:
    rd: RunData
    spec: ReportSpec
    out: Path
    order: list[str]
    pal: dict[str, str]
    df: pd.DataFrame

    @property
    def tables(self) -> Path:
        return self.out / "tables"

    @property
    def figures(self) -> Path:
        return self.out / "figures"


def _pick_examples(ctx: _Ctx, frames: pd.DataFrame) -> list[str]:
    """Item ids for the example figures: corrupted video at the strongest severity and the SNR
    nearest 0 dB where weights exist, one per utterance, in a stable order."""
    n = ctx.spec.n_examples
    if n <= 0:
        return []
    df = ctx.df
    cand = df.drop_duplicates("item_id").copy()
    if frames is not None and not frames.empty:
        with_w = set(frames["item_id"])
        cand = cand[cand["item_id"].isin(with_w)]
    if cand.empty:
        cand = df.drop_duplicates("item_id").copy()
    sev = pd.to_numeric(cand.get("severity", pd.Series(0, index=cand.index)), errors="coerce").fillna(0)
    snr = pd.to_numeric(cand.get("snr_db", pd.Series(0, index=cand.index)), errors="coerce").fillna(0)
    cand = cand.assign(_sev=-sev, _snr=(snr - 0).abs()).sort_values(["_sev", "_snr", "item_id"])
    picked, seen = [], set()
    for r in cand.itertuples(index=False):
        if r.utt_id in seen:
            continue
        picked.append(r.item_id)
        seen.add(r.utt_id)
        if len(picked) >= n:
            break
    return picked


def run_model_labels(rd: RunData) -> Optional[list[str]]:
    """The labels of the run's model entries (``run.json``'s spec), or None when it does not say
    (then the model table lists every checkpoint folder)."""
    from benchmark.configtools import from_dict
    from benchmark.spec import ModelEntry

    models = (rd.info.get("spec") or {}).get("models") if isinstance(rd.info, dict) else None
    if not isinstance(models, list):
        return None
    try:
        return [from_dict(ModelEntry, m, source="run.json").label for m in models]
    except Exception as exc:  # noqa: BLE001 - an older run.json: list every checkpoint
        log.warning("run.json model entries not usable (%s); the model table lists every checkpoint", exc)
        return None


def spectrogram_systems(systems: list[str], df: pd.DataFrame, references: list[str],
                        limit: int = MAX_SPECTROGRAM_SYSTEMS) -> list[str]:
    """At most ``limit`` of ``systems`` (in table order) for an example's spectrogram figure: the
    baselines (rows without a model) and the paired tests' reference systems first, then the
    others in order; the result keeps the table order."""
    baselines = set(df.loc[~has_model_mask(df), "system"]) if "system" in df else set()
    refs = set(select_systems(df, references)) if "system" in df else set()
    first = [s for s in systems if s in baselines or s in refs]
    keep = set((first + [s for s in systems if s not in first])[:max(0, limit)])
    return [s for s in systems if s in keep]


def _read_wav(p: Optional[Path]) -> Optional[np.ndarray]:
    if p is None or not p.exists():
        return None
    import soundfile as sf

    try:
        x, _ = sf.read(str(p), dtype="float32", always_2d=False)
        return x if x.ndim == 1 else x.mean(axis=1)
    except Exception as exc:
        log.warning("%s: unreadable audio (%s); left out of the examples", p, exc)
        return None


def _example(ctx: _Ctx, item: str, frames: pd.DataFrame, h: HtmlReport, figs: list[Path]) -> None:
    rows = ctx.df[ctx.df["item_id"] == item]
    r0 = rows.iloc[0]
    run = ctx.rd.run_dir
    clean = _read_wav(resolve(run, r0.get("clean_path")))
    noisy = _read_wav(resolve(run, r0.get("mixture_path")))
    enh = {}
    for s in ctx.order:
        sr_ = rows[rows["system"] == s]
        if not sr_.empty:
            x = _read_wav(resolve(run, sr_.iloc[0].get("enhanced_path")))
            if x is not None:
                enh[s] = x
    desc = f"{r0['utt_id']} · noise {r0.get('noise', '?')} at {r0.get('snr_db', '?')} dB · video: {r0.get('corruption', '?')}" + (
        f"@{r0.get('severity')}" if str(r0.get("corruption")) != "none" else "")
    h.heading(desc)
    safe = item.replace("/", "__")
    # weight traces over lips + spectrogram
    traces = {}
    if frames is not None and not frames.empty:
        f = frames[frames["item_id"] == item]
        for s in ctx.order:
            g = f[f["system"] == s]
            if not g.empty:
                fr = 1.0 / float(np.median(np.diff(g["time_s"]))) if len(g) > 1 else 62.5
                traces[s] = (g["visual_weight"].to_numpy(), g["corruption_level"].to_numpy(), fr)
    if traces and noisy is not None:
        lips = lipc = None
        lp, cp = resolve(run, r0.get("lips_path")), resolve(run, r0.get("corruption_path"))
        try:
            lips = np.load(lp) if lp is not None and lp.exists() else None
            lipc = np.load(cp) if cp is not None and cp.exists() else None
        except Exception as exc:
            log.warning("%s: lips unreadable (%s)", lp, exc)
        fps = float(r0.get("fps")) if pd.notna(r0.get("fps", np.nan)) else 25.0
        out = plots.weight_trace_example(lips, lipc, fps, noisy, traces, f"Visual weights over time: {desc}", ctx.pal,
                                         ctx.figures / f"weights_example_{safe}")
        if out:
            figs += out
            h.figure(out[0], "Visual weight of every system that has weights, over the lip frames and the noisy "
                             "spectrogram; red = corrupted video frames.")
    panels = {}
    if clean is not None:
        panels["clean"] = clean
    if noisy is not None:
        panels["noisy"] = noisy
    shown = spectrogram_systems(list(enh), ctx.df, ctx.spec.references)
    panels.update({k: enh[k] for k in shown})
    if len(panels) > 1:
        out = plots.spectrogram_panels(panels, f"Spectrograms: {desc}", ctx.pal, ctx.figures / f"spectrograms_{safe}")
        if out:
            figs += out
            left = (f" {len(shown)} of the {len(enh)} systems: the baselines and the reference systems first, then "
                    "in table order (every system's audio is below)." if len(shown) < len(enh) else "")
            h.figure(out[0], "Clean, noisy and enhanced spectrograms (same colour scale)." + left)
    clips = ([("clean", clean)] if clean is not None else []) + ([("noisy", noisy)] if noisy is not None else []) + list(enh.items())
    if clips:
        h.audio_grid(clips)


def _noise_check(rd: RunData, results: pd.DataFrame, n_boot: int) -> tuple[Optional[pd.DataFrame], str]:
    """The summary of the run's oracle-noise check (:mod:`benchmark.analysis.noise_model`) and
    its cell, or (None, "") when it has not been run or cannot be read."""
    from benchmark.analysis.noise_model import cell_line, consistency, load_check, summarize_check

    try:
        rows = load_check(rd.run_dir)
        if rows is None or rows.empty:
            return None, ""
        gap = consistency(rows, results)
        cell = cell_line(rows) + ("" if gap is None else f"; NMF arm vs the run's own rows: max |Δ SI-SDR| {gap:.2g} dB")
        return summarize_check(rows, results, n_boot=n_boot), cell
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s: unreadable oracle-noise check (%s); left out of the report", rd.run_dir, exc)
        return None, ""


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, spec: Any = None, *,
                 progress: bool = True) -> Path:
    """Write the report of a finished run folder; return the path of ``index.html``.

    ``spec`` may be an :class:`~benchmark.spec.ExperimentSpec`, a :class:`ReportSpec` or None
    (then ``run.json``'s report settings, else defaults). ``out_dir`` defaults to
    ``reports/<run folder name>``.
    """
    t0 = time.time()
    rd = load_run(run_dir)
    rs = _report_spec(spec, rd)
    out = Path(out_dir) if out_dir is not None else Path("reports") / rd.run_dir.name
    clear_previous_report(out)
    before = _file_stamps(out)
    with plots.figure_formats(rs.figure_formats):
        index = _write(rd, rs, out, progress)
    write_manifest(out, before)
    log.info("report written to %s (%.1f s)", index, time.time() - t0)
    return index


#: the list of files a report wrote (relative to its folder), so that the next report into the same
#: folder removes them first: a table or figure the new report does not make (a system or an
#: analysis no longer in the run) must not stay behind and be listed in ``summary.md``
MANIFEST = "report_files.txt"


def clear_previous_report(out: Path) -> list[Path]:
    """Delete the files that the previous report in ``out`` wrote (its :data:`MANIFEST`), and the
    manifest; files it does not list (a user's own) stay. Returns the deleted paths."""
    out = Path(out)
    man = out / MANIFEST
    if not man.exists():
        return []
    root = out.resolve()
    gone = []
    for line in man.read_text().splitlines():
        p = (out / line.strip()).resolve()
        if line.strip() and root in p.parents and p.is_file():
            p.unlink()
            gone.append(p)
    man.unlink()
    if gone:
        log.info("%s: removed the %d files of the previous report", out, len(gone))
    return gone


def _file_stamps(out: Path) -> dict[str, int]:
    """``relative path -> mtime_ns`` of every file under ``out`` (empty if it does not exist)."""
    out = Path(out)
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} if out.exists() else {}


#: what a report writes into its folder: these files and everything under these subfolders
REPORT_FILES, REPORT_DIRS = ("index.html", "summary.md"), ("tables", "figures")


def write_manifest(out: Path, before: dict[str, int]) -> Path:
    """Write :data:`MANIFEST`: the report's files (:data:`REPORT_FILES`, :data:`REPORT_DIRS`) under
    ``out`` that are new or changed since ``before`` (:func:`_file_stamps` taken before the report
    was written), i.e. what this report wrote; nothing else in the folder is ever listed."""
    out = Path(out)
    ours = [f for f, t in _file_stamps(out).items() if before.get(f) != t]
    files = sorted(f for f in ours if f in REPORT_FILES or Path(f).parts[0] in REPORT_DIRS)
    (out / MANIFEST).write_text("\n".join(files) + "\n")
    return out / MANIFEST


def _write(rd: RunData, rs: ReportSpec, out: Path, progress: bool) -> Path:
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    df = rd.results
    order = system_order(df)
    ctx = _Ctx(rd, rs, out, order, report_palette(df), df)
    kw = dict(n_boot=rs.bootstrap, ci=rs.ci, seed=rs.seed)
    metrics = [m for m in HEADLINE if m in rd.metrics] + [m for m in rd.metrics if m not in HEADLINE]
    if rs.metrics is not None:
        unknown = [m for m in rs.metrics if m not in rd.metrics]
        if unknown:
            log.warning("report.metrics %s not in the results (found: %s); skipped", unknown, ", ".join(rd.metrics))
        metrics = [m for m in metrics if m in rs.metrics]
    if not metrics:
        log.warning("%s: no metric columns found (expected e.g. si_sdr with input_si_sdr)", rd.run_dir)
    steps = tqdm(total=6, desc="report", disable=not progress, leave=False)

    # ---- statistics and tables -------------------------------------------------------------
    tables: dict[str, Any] = {}
    written: list[Path] = []
    for m in metrics:
        t = paper_table(df, m, systems=order, references=rs.references, **kw)
        tables[m] = t
        written += t.write(ctx.tables / m)
        if "noise" in df and df["noise"].nunique() > 1:
            for nz in sorted(df["noise"].dropna().unique()):
                tn = paper_table(df[df["noise"] == nz], m, systems=order, references=rs.references, title=f"{metric_label(m)} by SNR, noise: {nz}", **kw)
                tables[f"{m}@{nz}"] = tn
                written += tn.write(ctx.tables / f"{m}_noise-{nz}")
    for m in [f"delta_{x}" for x in metrics if f"delta_{x}" in df]:
        t = paper_table(df, m, systems=order, references=rs.references, **kw)
        tables[m] = t
        written += t.write(ctx.tables / m)
    by = [c for c in ("system", "model_id", "fusion", "algorithm", "noise", "snr_db", "corruption", "severity") if c in df]
    cols = metrics + [f"delta_{m}" for m in metrics if f"delta_{m}" in df]
    summ = summarize_many(df.assign(**{c: df[c].fillna("") for c in ("fusion",) if c in df}), cols, by, **kw)
    summ.to_csv(ctx.tables / "summary_stats.csv", index=False)
    tests = pd.concat([paired_tests(df, m, references=rs.references, **kw) for m in cols], ignore_index=True) if cols else pd.DataFrame()
    if not tests.empty:
        tests.to_csv(ctx.tables / "paired_tests.csv", index=False)
    qual = "delta_si_sdr" if "delta_si_sdr" in df else (f"delta_{metrics[0]}" if metrics else None)
    n_seeds = int(df[SEED_COLUMN].dropna().nunique()) if SEED_COLUMN in df else 1
    spread = seed_spread_table(df, qual, systems=order) if qual else pd.DataFrame()
    if not spread.empty:
        write_frame(spread, ctx.tables / "seed_spread", title=f"Spread between training seeds: {metric_label(qual)}")
    head_tests = headline_tests(df, qual, references=rs.references, systems=order, **kw) if qual else pd.DataFrame()
    precision = precision_table(df, qual, references=rs.references, systems=order, tests=head_tests, **kw) if qual else pd.DataFrame()
    if not precision.empty:
        write_frame(precision, ctx.tables / "achieved_precision",
                    title=f"Achieved precision: {rs.ci:.0%} CI half-width of paired differences in {metric_label(qual)}")
    diffs = difference_table(head_tests, systems=order)
    if not diffs.empty:
        write_frame(diffs, ctx.tables / "headline_differences",
                    title=f"Paired differences in {metric_label(qual)} vs each reference, headline conditions")
    trained = training_table(rd.run_dir, order=[s for s in dict.fromkeys(df["model_id"].astype(str)) if s],
                             labels=run_model_labels(rd))
    trained_summary = training_summary(trained)
    if not trained.empty:
        write_frame(trained, ctx.tables / "models", title="Trained models (best validation epoch)", floatfmt=".4g")
    noise_check, noise_cell = _noise_check(rd, df, rs.bootstrap)
    if noise_check is not None:
        write_frame(noise_check, ctx.tables / "noise_model_check", title=f"Oracle-noise check ({noise_cell})")
    steps.update()

    # ---- reliability diagnostics -------------------------------------------------------------
    frames = diag.frame_table(df, rd.run_dir, side=rs.weights_side, progress=progress)
    pairs = diag.paired_weights(frames)
    rel = diag.reliability_table(df, frames, systems=order, pairs=pairs, **kw)
    rel_show = rel_kind = pd.DataFrame()
    if not rel.empty:
        rel_show = rel.copy()
        rel_show = rel_show[rel_show["system"].isin(set(df.loc[has_model_mask(df), "system"]))].reset_index(drop=True)
        write_frame(rel_show, ctx.tables / "reliability", title="Reliability-weight diagnostics")
        rel_kind = diag.paired_summary(pairs, systems=order, **kw)
        if not rel_kind.empty:
            write_frame(rel_kind, ctx.tables / "reliability_by_corruption",
                        title="Frame-paired reliability per corruption kind and severity")
    steps.update()

    # ---- efficiency ------------------------------------------------------------------------
    eff = efficiency_table(df, quality_metric=qual or "", systems=order)
    write_frame(eff, ctx.tables / "efficiency", title="Efficiency", floatfmt=".4g")
    steps.update()

    # ---- reference comparison ----------------------------------------------------------------
    refs: list = []
    if rs.reference:
        from benchmark.report.reference import comparison_tables, load_reference

        spec_d = rd.info.get("spec") if isinstance(rd.info.get("spec"), dict) else {}
        corpus = str((spec_d.get("corpus") or {}).get("name", "?"))
        refs = comparison_tables(load_reference(rs.reference), df, corpus_name=corpus, synthetic=rd.synthetic_corpus)
        for i, (title, tab, note) in enumerate(refs):
            write_frame(tab, ctx.tables / f"reference_comparison_{i + 1}", title=title, floatfmt=".2f")
            (ctx.tables / f"reference_comparison_{i + 1}.note.txt").write_text(note + "\n")

    # ---- figures -----------------------------------------------------------------------------
    figs: dict[str, list[Path]] = {}
    pk = dict(n_boot=max(200, rs.bootstrap // 2), ci=rs.ci, seed=rs.seed)
    for m in metrics:
        figs[f"snr_{m}"] = plots.metric_vs_snr(df, m, ctx.pal, order, ctx.figures / f"{m}_vs_snr", **pk)
        if f"delta_{m}" in df:
            figs[f"snr_delta_{m}"] = plots.metric_vs_snr(df, f"delta_{m}", ctx.pal, order, ctx.figures / f"delta_{m}_vs_snr", **pk)
    main_delta = qual
    if main_delta and "noise" in df and df["noise"].nunique() > 1:
        figs["noise_facets"] = plots.metric_vs_snr(df, main_delta, ctx.pal, order, ctx.figures / f"{main_delta}_by_noise", facet="noise", **pk)
    if main_delta:
        figs["robustness"] = plots.robustness_curves(df, main_delta, ctx.pal, order, ctx.figures / f"robustness_{main_delta}", **pk)
    if "stoi" in metrics:
        figs["robustness_stoi"] = plots.robustness_curves(df, "stoi", ctx.pal, order, ctx.figures / "robustness_stoi", **pk)
    steps.update()
    sample = diag.sample_frames(frames, 4000, ["system", "snr_db", "corruption_level"], seed=rs.seed) if not frames.empty else frames
    figs["weight_dist"] = plots.weight_distributions(sample, ctx.pal, order, ctx.figures / "visual_weight_distributions")
    figs["research"] = plots.research_question(rel_show, ctx.pal, order, ctx.figures / "reliability_vs_robustness")
    if qual:
        figs["compute"] = plots.quality_vs_compute(eff, ctx.pal, order, ctx.figures / "quality_vs_compute", quality=qual)
        figs["seed_strip"] = plots.seed_strip(spread, ctx.pal, order, ctx.figures / f"seed_spread_{qual}", metric=qual)
    steps.update()

    # ---- HTML --------------------------------------------------------------------------------
    h = HtmlReport(f"avfusion-bench report: {rd.name}")
    n_utt = df["utt_id"].nunique()
    n_fail = int((df.get("status", pd.Series(dtype=str)).astype(str) == "failed").sum())
    h.subtitle.append(f"{len(df)} result rows · {n_utt} utterances · {df['condition_id'].nunique()} conditions · "
                      f"{len(order)} systems · {n_seeds} training seed{'s' if n_seeds != 1 else ''} · {n_fail} failed rows")
    ci_what = (f"{rs.ci:.0%} hierarchical bootstrap CI over {n_seeds} training seeds and {n_utt} utterances"
               if n_seeds > 1 else f"{rs.ci:.0%} bootstrap CI over {n_utt} utterances")
    h.subtitle.append(f"run folder {rd.run_dir} · generated {time.strftime('%Y-%m-%d %H:%M')}")
    if rd.info.get("synthetic_fake_run"):
        h.note("This run folder is a FAKE written by benchmark.report.synthetic_run for testing: the numbers are made "
               "up and mean nothing.")
    elif rd.synthetic_corpus:
        h.note("Corpus: the built-in SYNTHETIC audio-visual corpus (offline TTS + rendered lips). Numbers are not "
               "comparable with results on real corpora.")
    headline = tables.get(metrics[0]) if metrics else None
    h.section("Headline")
    if headline is not None:
        h.raw(paper_table_html(headline, ctx.pal))
    for key in ("snr_delta_si_sdr", "research"):
        if figs.get(key):
            h.figure(figs[key][0], {"snr_delta_si_sdr": f"SI-SDR improvement vs input SNR (bands: {ci_what}).",
                                    "research": "Do reliability weights track corrupted video, and does it pay off? Left: "
                                    "ROC AUC of the visual weight; bars: frame-paired (the corrupted frames with the "
                                    "clean video against the same frames corrupted, same mixture and random draws: free "
                                    "of frame content), diamonds: within utterance (clean vs corrupted frames of one "
                                    "item). Right: loss of "
                                    "SI-SDR improvement from clean to fully corrupted video. Hatched: the diagnostics' controls "
                                    "(oracle: must read ~1; constant weight: 0.5), not competitors."}[key])
    if not diffs.empty:
        h.section("Gains over the references")
        h.para(f"Mean paired difference in {metric_label(qual)} of each system minus each reference (same utterance, "
               f"condition and training seed) with its {ci_what}, in the headline conditions (clean video at each SNR, "
               "pooled over noise types) and over all conditions; * = Wilcoxon signed-rank p < 0.05 after Holm "
               "correction. A CI that contains 0 does not separate the two systems.", cls="muted")
        h.raw(frame_table_html(diffs, palette=ctx.pal))
    h.section("Quality tables")
    for m in metrics:
        h.heading(metric_short(m))
        h.raw(paper_table_html(tables[m], ctx.pal))
        if f"delta_{m}" in tables:
            h.raw(paper_table_html(tables[f"delta_{m}"], ctx.pal))
    if not spread.empty:
        h.section("Spread between training seeds")
        h.para(f"Each system with a model was trained with {n_seeds} seeds. Per seed: the mean {metric_label(qual)} over "
               "all its utterances and conditions; the between-seed SD of those means; the system's rank among these "
               "systems in each seed (1 = best). A ranking that changes between seeds does not survive retraining.")
        h.raw(frame_table_html(spread, palette=ctx.pal))
        if figs.get("seed_strip"):
            h.figure(figs["seed_strip"][0], "Mean per training seed of every system (dots), their mean (bar) and ± one "
                                            "between-seed SD (band).")
    if not precision.empty:
        h.section("Achieved precision")
        h.para(f"Half-width (dB) of the {ci_what} of the "
               f"mean paired difference in {metric_label(qual)} of each system vs each reference (same utterance, "
               f"condition and training seed), in the headline conditions (clean video at each SNR, pooled over noise "
               f"types) and over all conditions. Target of the study: ≤ {PRECISION_TARGET_DB:g} dB in the headline "
               "conditions.", cls="muted")
        h.raw(frame_table_html(precision, palette=ctx.pal))
    if not trained.empty:
        h.section("Trained models")
        h.para("How each trained model ended its training (best epoch on the clean validation speakers): validation "
               "IS divergence per time-frequency bin (lower = a better speech prior), early stopping, and for audio-"
               "visual models the video gain (validation -ELBO with zeroed video minus clean video, nats per frame; "
               "~0 = the model does not use the video) and the share of its visual front-end's output units that are "
               "constant on the validation lips (dead ReLUs, which carry nothing to the fusion). Per model over its "
               "training seeds: mean [min, max]; every seed in tables/models.csv.", cls="muted")
        h.raw(frame_table_html(trained_summary, floatfmt=".4g", palette=ctx.pal))
    lips_info = lip_information(rd.run_dir)
    if lips_info:
        h.heading("What the lips alone tell (corpus check, held-out speakers)")
        h.raw(f"<pre>{esc(lips_info)}</pre>")
    if noise_check is not None:
        h.heading(f"Speech prior or noise model? (oracle-noise check: {noise_cell})")
        h.para("Each listed model, every training seed, enhances the cell's mixtures twice with the run's algorithm "
               "settings: with the NMF noise model as the run did, and with the noise variance fixed to the true "
               "noise's periodogram (only the speech gains updated; a diagnostic that uses the noise signal, not a "
               "system). A noise type that turns from a loss into a gain with the oracle noise is lost to the NMF "
               "noise model; one that still loses is lost to the speech prior. Mean [95 % hierarchical bootstrap "
               "CI]; oracle-Wiener: the run's baseline on the same mixtures (`python run_benchmark.py noise-check`).",
               cls="muted")
        h.raw(frame_table_html(noise_check, palette=ctx.pal))
    per_noise = [k for k in tables if "@" in k]
    if per_noise:
        h.section("Per noise type")
        for k in per_noise:
            h.heading(tables[k].title)
            h.raw(paper_table_html(tables[k], ctx.pal))
    h.section("Plots")
    for key, cap in (("noise_facets", "SI-SDR improvement vs SNR per noise type."),
                     ("robustness", "Robustness curves: improvement vs visual-corruption severity, one panel per kind."),
                     ("robustness_stoi", "STOI vs visual-corruption severity."),
                     *[(f"snr_{m}", f"{metric_label(m)} vs input SNR.") for m in metrics],
                     *[(f"snr_delta_{m}", f"{metric_label('delta_' + m)} vs input SNR.") for m in metrics[1:]]):
        if figs.get(key):
            h.figure(figs[key][0], cap)
    h.section("Reliability weights")
    if rel_show.empty:
        h.para("No system of this run wrote visual-weight traces; nothing to diagnose.")
    else:
        h.para("Per system with a model: the frame-paired ROC AUC (headline: on the frames a run corrupts, "
               "the weight with the clean video of the same mixture against the weight with the corrupted video; "
               "mean over pairs, 95% CI) and the mean paired weight drop; the within-utterance ROC AUC of the "
               "weight separating clean from corrupted frames of one item (mean over items with both, 95% CI; "
               "pooled over frames), which frame content can confound; mean visual weight on clean / corrupted "
               "frames, Spearman correlation of the item mean weight with SNR (clean video), and the drop of "
               "SI-SDR improvement from clean to fully corrupted video. Systems without weights show only the drop.")
        h.raw(frame_table_html(rel_show, palette=ctx.pal))
        if not rel_kind.empty:
            h.heading("Frame-paired, per corruption kind and severity")
            h.raw(frame_table_html(rel_kind, palette=ctx.pal))
    if figs.get("weight_dist"):
        h.figure(figs["weight_dist"][0], "Distribution of per-frame visual weights by frame corruption and by SNR.")
    if figs.get("compute") or not eff.empty:
        h.section("Efficiency")
        h.raw(frame_table_html(eff, floatfmt=".4g", palette=ctx.pal))
        if figs.get("compute"):
            h.figure(figs["compute"][0], "Quality vs compute.")
    if refs:
        h.section("Reference comparison")
        for title, tab, note in refs:
            h.heading(title)
            h.note(note)
            h.raw(frame_table_html(tab, floatfmt=".2f"))
    examples = _pick_examples(ctx, frames)
    if examples:
        h.section("Examples")
        for it in tqdm(examples, desc="examples", disable=not progress, leave=False):
            ex_figs: list[Path] = []
            _example(ctx, it, frames, h, ex_figs)
            figs[f"example_{it}"] = ex_figs
    if not tests.empty:
        h.section("Paired tests")
        h.para("Wilcoxon signed-rank tests (scipy) of each system against the references on the same (utterance, "
               "condition, training seed) triples, Holm-corrected per metric; effect sizes: mean difference with its "
               f"{ci_what} and matched-pairs rank-biserial correlation.", cls="muted")
        show = tests[["metric", "system", "reference", "n_pairs", "n_seeds", "n_utterances", "mean_diff", "diff_ci_low", "diff_ci_high", "p", "p_holm", "rank_biserial"]]
        h.raw(frame_table_html(show, formats={"p": ".2e", "p_holm": ".2e"}, palette=ctx.pal))
    h.section("Methods")
    h.raw(methods_html(metric_methods(rd.info, list(rd.metrics))))
    h.section("Run configuration and provenance")
    prov = {k: rd.info.get(k) for k in ("name", "preset", "git_commit", "git_dirty", "versions", "device", "machine", "seeds") if k in rd.info}
    h.json_details("provenance (run.json)", prov)
    if rd.info.get("spec"):
        h.json_details("resolved experiment spec", rd.info["spec"])
    h.json_details("report settings", {"bootstrap": rs.bootstrap, "ci": rs.ci, "seed": rs.seed, "n_examples": rs.n_examples,
                                       "reference": rs.reference, "references_for_tests": list(rs.references), "weights_side": rs.weights_side})
    index = h.write(out / "index.html")
    steps.update()
    steps.close()

    # ---- summary.md --------------------------------------------------------------------------
    md = [f"# Report: {rd.name}", "", h.subtitle[0], ""]
    if rd.synthetic_corpus:
        md += ["> Corpus: built-in synthetic audio-visual corpus (a stand-in; not comparable with real-corpus results).", ""]
    if headline is not None:
        md += [headline.to_markdown(), ""]
    if "delta_si_sdr" in tables:
        md += [tables["delta_si_sdr"].to_markdown(), ""]
    from benchmark.report.tables import frame_to_markdown

    if not diffs.empty:
        md += [frame_to_markdown(diffs, ".2f", f"Paired differences in {metric_label(qual)} vs each reference (mean "
                                               f"[{ci_what}]; * Holm p < 0.05)"), ""]
    if not trained_summary.empty:
        md += [frame_to_markdown(trained_summary, ".4g", "Trained models (validation, per model over its training seeds)"), ""]
    if lips_info:
        md += ["```", lips_info, "```", ""]
    if noise_check is not None:
        md += [frame_to_markdown(noise_check, ".2f", f"Speech prior or noise model? Oracle-noise check ({noise_cell})"), ""]
    if not spread.empty:
        md += [frame_to_markdown(spread, ".3f", f"Spread between training seeds: {metric_label(qual)}"), ""]
    if not precision.empty:
        md += [frame_to_markdown(precision, ".3f", f"Achieved precision: {rs.ci:.0%} CI half-width (dB) of paired "
                                                   f"differences in {metric_label(qual)} (target ≤ {PRECISION_TARGET_DB:g} dB)"), ""]
    if not rel_show.empty:
        md += [frame_to_markdown(rel_show, ".3f", "Reliability-weight diagnostics"), ""]
    md += ["## Figures", ""] + [f"- [{p.name}](figures/{p.name})" for fl in figs.values() for p in fl if p.suffix == ".png"]
    md += ["", "## Tables", ""] + [f"- [{p.name}](tables/{p.name})" for p in sorted(ctx.tables.glob("*.md"))]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    return index

