"""Reliability-weight diagnostics: do a system's per-frame visual weights track reliability?

(Over 400 lines on purpose: the reliability-weight diagnostics from traces to table in one
module, which is also an entry of the score stage's code hash (:mod:`benchmark.codehash`):
splitting it would change what an edit reruns.)

Works on any system whose traces hold ``weights_prior``, ``weights_decoder`` or
``weights_encoder`` ``[T, 2]`` (column 1 = visual; every fusion's weight follows the one
definition of ``docs/fusion_weights.md``) -- fusions, the AV-CVAE and the inference-level
mixture/switching baselines alike; systems without weights (audio-only, baselines) are skipped
because they have no weights, never because of their name. Order of preference:
``weights_prior`` first (present only for a model with a visual prior p(z | v): its precision
share is where the AV-CVAE puts the video into the speech prior the EM uses, so it is that
model's reliability trace, and the AV-CVAE is compared through it beside the fusions; its
fusion weights stay in the traces), then the decoder-side weights (they shape the speech
variance the EM uses), then the encoder side; the side is configurable.

Numbers per system (two AUCs, both :func:`roc_auc`, the one AUC of the suite; definitions in
``docs/fusion_weights.md``, "Diagnostics"):

* ``auc_paired`` (the headline): frame-paired. For every (utterance, noise, SNR, training seed)
  with both a clean-video run and a corrupted-video run (:func:`paired_weights`), the frames
  corrupted in the corrupted run (level > 0) are taken twice: the weight there with the clean
  video (positive) against the weight on the same frames with the corrupted video; averaged
  over such pairs (all corruption kinds and severities; :func:`paired_summary` breaks it down
  per kind and severity), with a hierarchical bootstrap CI (training seeds, then utterances).
  Both classes hold the same frames, and with common random numbers (the EM's random streams
  of an item derive from the mixture, not from the visual condition) the two runs see the same
  audio and the same draws: only the video differs, so frame content cannot leak in. 1 = every
  clean-video weight above every corrupted-video weight on those frames, 0.5 = blind (a
  constant weight reads exactly 0.5). ``weight_drop_paired``: the mean over pairs of the mean
  (clean minus corrupted) weight on those frames, with its CI.
* ``auc_within``: within-utterance. The visual weight separating the clean (positive) from the
  corrupted frames of one corrupted-video item, per item with both kinds of frames, averaged
  (same CI); also behind the per-row ``visual_weight_auc`` of the results table. It compares
  *different* frames, so anything that makes the corrupted frames' weight differ besides the
  video (e.g. bursts falling on frames the weight is low on anyway) enters it.
  ``auc_within_pooled`` pools all frames of all such items.
* ``weights``: which trace gave the weights (``decoder``, ``encoder``, ...) or ``no weights``
  (e.g. the audio-only A-VAE: its AUC is NaN *because* it has no weights, not 0.5).
* ``control``: non-empty for the diagnostics' controls, read from the fusion class's ``control``
  attribute: ``oracle-reliability`` (weight = 1 - true corruption level, must read ~1) is a
  positive control, a constant-weight fusion a negative one (0.5). Never competitors.
* ``corr_snr``: Spearman correlation of an item's mean visual weight with its SNR (items with
  clean video only), and its p-value. Negative = more trust in the lips as the audio gets worse.
* ``si_sdr_drop``: mean SI-SDR improvement with clean video minus that with fully corrupted
  video (the highest severity of each corruption kind, paired on utterance, noise, SNR and
  training seed).

With several training seeds (a ``train_seed`` column) each seed's rows are items of their own
(their traces are that seed's files) and every CI resamples the seeds, then the utterances
(:func:`benchmark.report.stats.bootstrap_ci`, the report's one hierarchical bootstrap).
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps
from tqdm import tqdm

from benchmark.report.runfolder import resolve
from benchmark.report.stats import bootstrap_ci
from benchmark.schema import TRAIN_SEED_COLUMN
from benchmark.seeding import derive_seed

log = logging.getLogger(__name__)

# weights_prior: the precision share of a visual prior p(z | v) (models.vae.prior_visual_weight), the
# AV-CVAE's reliability trace (first: only models with a visual prior record it)
WEIGHT_KEYS = {"decoder": ("weights_prior", "weights_decoder", "weights_encoder"),
               "encoder": ("weights_prior", "weights_encoder", "weights_decoder")}


def roc_auc(weight: np.ndarray, corrupted: np.ndarray) -> float:
    """AUC of ``weight`` ranking clean frames above corrupted ones (NaN when one class is absent)."""
    from sklearn.metrics import roc_auc_score

    w = np.asarray(weight, dtype=np.float64)
    c = np.asarray(corrupted).astype(bool)
    ok = np.isfinite(w)
    w, c = w[ok], c[ok]
    if c.all() or (~c).all() or w.size == 0:
        return float("nan")
    return float(roc_auc_score(~c, w))


def weight_key(traces: dict, side: str = "decoder") -> Optional[str]:
    """The traces key the visual weight is read from (``side``'s preference order of
    :data:`WEIGHT_KEYS`), or ``None`` when the traces hold no usable weights."""
    for key in WEIGHT_KEYS.get(side, WEIGHT_KEYS["decoder"]):
        if key in traces:
            w = np.asarray(traces[key])
            if (w.ndim == 2 and w.shape[1] >= 2) or w.ndim == 1:
                return key
    return None


def visual_weight(traces: dict, side: str = "decoder") -> Optional[np.ndarray]:
    """The visual-weight trace ``[T]`` (column 1) of a traces mapping, or ``None`` if it has none."""
    key = weight_key(traces, side)
    if key is None:
        return None
    w = np.asarray(traces[key], dtype=np.float64)
    return w[:, 1] if w.ndim == 2 else w


def weight_summary(weight: np.ndarray, level: Optional[np.ndarray]) -> dict[str, float]:
    """The per-item columns of :data:`benchmark.schema.WEIGHT_COLUMNS` from a visual-weight trace
    ``[T]`` and the corruption level per frame ``[T]`` (``> 0`` = corrupted; None: unknown):
    mean weight overall / on clean / on corrupted frames and :func:`roc_auc`. The runner's
    per-row summaries and :func:`item_weights` both use it. Traces of different lengths are cut
    to the shorter one."""
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    out = {"visual_weight_mean": float(np.nanmean(w)) if w.size else float("nan"),
           "visual_weight_mean_clean_frames": float("nan"), "visual_weight_mean_corrupted_frames": float("nan"),
           "visual_weight_auc": float("nan")}
    if level is None:
        return out
    lev = np.asarray(level, dtype=np.float64).reshape(-1)
    n = min(w.size, lev.size)
    w, bad = w[:n], lev[:n] > 0
    if (~bad).any():
        out["visual_weight_mean_clean_frames"] = float(np.nanmean(w[~bad]))
    if bad.any():
        out["visual_weight_mean_corrupted_frames"] = float(np.nanmean(w[bad]))
    out["visual_weight_auc"] = roc_auc(w, bad)
    return out


def load_traces(path: Optional[str | "np.os.PathLike"]) -> dict:
    """The arrays of a traces ``.npz`` (empty dict when missing or unreadable, with a warning)."""
    if path is None:
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        return {}
    except Exception as exc:  # corrupt file: say which one, keep going
        log.warning("%s: unreadable traces (%s); skipped", path, exc)
        return {}


#: the columns that identify one item of one system (a training seed's run of it is its own item)
_ITEM_KEYS = ("system", "item_id", "utt_id", "condition_id", "noise", "snr_db", "corruption", "severity",
              TRAIN_SEED_COLUMN)


def _seeds(df: pd.DataFrame) -> Optional[list]:
    """The training seed of each row (for the hierarchical bootstrap), or None without the column."""
    return pd.to_numeric(df[TRAIN_SEED_COLUMN], errors="coerce").tolist() if TRAIN_SEED_COLUMN in df else None


def frame_table(results: pd.DataFrame, run_dir, *, side: str = "decoder", progress: bool = False) -> pd.DataFrame:
    """One row per STFT frame of every result row whose traces have visual weights.

    Columns: system, item_id, utt_id, condition_id, noise, snr_db, corruption, severity,
    train_seed (when the results have it: each seed's row reads its own traces), frame, time_s, visual_weight, corruption_level, corrupted, weight_source (the traces key
    without ``weights_``).
    """
    parts = []
    if "traces_path" not in results:
        return pd.DataFrame()
    rows = results[results["traces_path"].notna()]
    keep = [c for c in _ITEM_KEYS if c in rows]
    it = rows.itertuples(index=False)
    for r in tqdm(it, total=len(rows), desc="weight traces", disable=not progress, leave=False):
        rd = r._asdict()
        tr = load_traces(resolve(run_dir, rd["traces_path"]))
        w = visual_weight(tr, side)
        if w is None:
            continue
        source = str(weight_key(tr, side)).removeprefix("weights_")
        T = len(w)
        level = np.asarray(tr.get("corruption_stft", np.zeros(T)), dtype=np.float64).reshape(-1)
        if len(level) != T:
            n = min(len(level), T)
            log.warning("%s: weights have %d frames but corruption_stft %d; using the first %d",
                        rd["traces_path"], T, len(level), n)
            w, level, T = w[:n], level[:n], n
        fr = float(np.asarray(tr.get("frame_rate", 62.5)))
        df = pd.DataFrame({"frame": np.arange(T), "time_s": np.arange(T) / fr, "visual_weight": w,
                           "corruption_level": level, "corrupted": level > 0, "weight_source": source})
        for k in keep:
            df[k] = rd[k]
        parts.append(df)
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True)


def item_weights(frames: pd.DataFrame) -> pd.DataFrame:
    """Per (system, item[, training seed]): mean visual weight overall / on clean / on corrupted
    frames and AUC."""
    if frames.empty:
        return pd.DataFrame()
    keys = [c for c in _ITEM_KEYS if c in frames]
    rows = []
    for key, g in frames.groupby(keys, dropna=False, sort=True):
        c = g["corrupted"].to_numpy()
        rows.append({**dict(zip(keys, key)), **weight_summary(g["visual_weight"].to_numpy(), c.astype(np.float64)),
                     "corrupted_fraction": float(c.mean())})
    return pd.DataFrame(rows)


#: the columns that pair a corrupted-video run with the clean-video run of the same mixture
_PAIR_KEYS = ("system", "utt_id", "noise", "snr_db", TRAIN_SEED_COLUMN)


def paired_weights(frames: pd.DataFrame) -> pd.DataFrame:
    """One row per (corrupted-video item, clean-video item of the same mixture) of a system.

    ``frames`` is :func:`frame_table`. A corrupted item (``corruption`` not ``none``) is paired
    with the clean-video item (``corruption == "none"``) of the same system, utterance, noise,
    SNR and training seed (the first when there are several); frame ``t`` of one is frame ``t``
    of the other (traces of different lengths are cut to the shorter one). On the frames the
    corrupted run marks corrupted (level > 0): ``auc_paired`` = :func:`roc_auc` of the weights
    with the clean video (positive) against the weights with the corrupted video on the same
    frames, ``weight_drop`` = mean (clean minus corrupted) weight, ``weight_clean`` /
    ``weight_corrupted`` their means, ``n_frames``. Items without a clean partner or without a
    corrupted frame give no row. Columns: the pair keys present, corruption, severity, those.
    """
    need = {"system", "utt_id", "corruption", "frame", "visual_weight", "corruption_level"}
    if frames is None or frames.empty or not need.issubset(frames.columns):
        return pd.DataFrame()
    keys = [c for c in _ITEM_KEYS if c in frames]
    on = [c for c in _PAIR_KEYS if c in frames]
    items = []
    for key, g in frames.groupby(keys, dropna=False, sort=True):
        g = g.sort_values("frame")
        items.append({**dict(zip(keys, key)), "_w": g["visual_weight"].to_numpy(np.float64),
                      "_level": g["corruption_level"].to_numpy(np.float64)})
    it = pd.DataFrame(items)
    if TRAIN_SEED_COLUMN in it:  # numeric; NaN (no seed) pairs with NaN
        it[TRAIN_SEED_COLUMN] = pd.to_numeric(it[TRAIN_SEED_COLUMN], errors="coerce")
    kind = it["corruption"].astype(str)
    clean = it[kind == "none"].drop_duplicates(on)
    corr = it[(kind != "none") & it["corruption"].notna()]
    if clean.empty or corr.empty:
        return pd.DataFrame()
    extra = [c for c in ("corruption", "severity") if c in corr]
    pairs = corr[on + extra + ["_w", "_level"]].merge(clean[on + ["_w"]], on=on, suffixes=("_x", "_0"))
    rows = []
    for r in pairs.to_dict("records"):
        w0, wx, lev = r["_w_0"], r["_w_x"], r["_level"]
        n = min(len(w0), len(wx), len(lev))
        bad = lev[:n] > 0
        if not bad.any():
            continue
        a, b = w0[:n][bad], wx[:n][bad]
        rows.append({**{c: r[c] for c in on + extra}, "n_frames": int(bad.sum()),
                     "auc_paired": roc_auc(np.concatenate([a, b]), np.r_[np.zeros(a.size, bool), np.ones(b.size, bool)]),
                     "weight_drop": float(np.nanmean(a - b)), "weight_clean": float(np.nanmean(a)),
                     "weight_corrupted": float(np.nanmean(b))})
    return pd.DataFrame(rows)


def paired_summary(pairs: pd.DataFrame, by: Sequence[str] = ("corruption", "severity"), *, n_boot: int = 2000,
                   ci: float = 0.95, seed: int = 0, systems: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Per system (and per ``by``, e.g. corruption kind and severity): the mean over pairs of
    :func:`paired_weights`' ``auc_paired`` and ``weight_drop`` with hierarchical bootstrap CIs
    (training seeds, then utterances), the mean weights with clean / corrupted video on the
    corrupted frames, ``n_pairs`` and ``n_frames``. Empty without pairs."""
    if pairs is None or pairs.empty:
        return pd.DataFrame()
    by = [c for c in by if c in pairs]
    rows = []
    for key, g in pairs.groupby(["system"] + by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(["system"] + by, key))
        clusters, sd = g["utt_id"].tolist(), _seeds(g)
        for col, out in (("auc_paired", "auc_paired"), ("weight_drop", "weight_drop_paired")):
            v = g[col].to_numpy(np.float64)
            lo, hi = bootstrap_ci(v, clusters=clusters, seeds=sd, n_boot=n_boot, ci=ci,
                                  seed=derive_seed(seed, out, *map(str, key)))
            row.update({out: float(np.nanmean(v)) if np.isfinite(v).any() else np.nan,
                        f"{out}_ci_low": lo, f"{out}_ci_high": hi})
        row.update({"weight_clean_video": float(g["weight_clean"].mean()),
                    "weight_corrupted_video": float(g["weight_corrupted"].mean()),
                    "n_pairs": int(len(g)), "n_frames": int(g["n_frames"].sum())})
        rows.append(row)
    out = pd.DataFrame(rows)
    if systems is not None:
        order = {s: i for i, s in enumerate(systems)}
        out = out.assign(_o=out["system"].map(lambda s: order.get(s, 1e9))).sort_values(["_o"] + by, kind="stable")
        out = out.drop(columns="_o").reset_index(drop=True)
    return out


def control_of(fusion: object) -> str:
    """The ``control`` class attribute of the fusion registered as ``fusion`` ("positive control
    (oracle)", "negative control ...") or "" (a competitor, no fusion, or an unknown name)."""
    name = "" if fusion is None or (isinstance(fusion, float) and np.isnan(fusion)) else str(fusion).strip()
    if not name:
        return ""
    try:
        from models.registry import FUSIONS

        return str(getattr(FUSIONS.get(name), "control", "") or "")
    except Exception:  # noqa: BLE001 - an unknown fusion (or no models package): not a control
        return ""


def _item_weights_from_results(results: pd.DataFrame) -> pd.DataFrame:
    """Fallback when no traces are readable: the weight summaries the harness wrote per row."""
    cols = ["visual_weight_mean", "visual_weight_mean_clean_frames", "visual_weight_mean_corrupted_frames", "visual_weight_auc"]
    have = [c for c in cols if c in results]
    if "visual_weight_mean" not in have:
        return pd.DataFrame()
    sub = results[pd.to_numeric(results["visual_weight_mean"], errors="coerce").notna()]
    keys = [c for c in _ITEM_KEYS if c in sub]
    out = sub[keys + have].copy()
    for c in cols:
        if c not in out:
            out[c] = np.nan
    return out


def metric_drop(results: pd.DataFrame, metric: str = "delta_si_sdr", *, n_boot: int = 2000, ci: float = 0.95,
                seed: int = 0) -> pd.DataFrame:
    """Per system: mean ``metric`` with clean video minus with fully corrupted video.

    "Fully corrupted" = the highest severity of each corruption kind present; each corrupted
    row is paired with the clean-video row of the same system, utterance, noise, SNR and training
    seed; the drop is averaged over kinds; its CI resamples seeds, then utterances. Columns: system, drop, drop_ci_low, drop_ci_high, n_pairs,
    clean, corrupted. Empty without clean and corrupted conditions.
    """
    need = {"system", "corruption", "severity", "utt_id", metric}
    if not need.issubset(results.columns):
        return pd.DataFrame()
    df = results.copy()
    df["_v"] = pd.to_numeric(df[metric], errors="coerce")
    if TRAIN_SEED_COLUMN in df:  # numeric; NaN (a system not trained in the run) pairs with NaN
        df[TRAIN_SEED_COLUMN] = pd.to_numeric(df[TRAIN_SEED_COLUMN], errors="coerce")
    clean = df[df["corruption"].astype(str) == "none"]
    corr = df[(df["corruption"].astype(str) != "none") & df["corruption"].notna()]
    if clean.empty or corr.empty:
        return pd.DataFrame()
    sev = pd.to_numeric(corr["severity"], errors="coerce")
    top = corr[sev == sev.groupby(corr["corruption"]).transform("max")]
    on = [c for c in ("system", "utt_id", "noise", "snr_db", TRAIN_SEED_COLUMN) if c in df]
    pairs = top[on + ["corruption", "_v"]].merge(clean[on + ["_v"]].drop_duplicates(on), on=on, suffixes=("_c", "_0"))
    pairs["d"] = pairs["_v_0"] - pairs["_v_c"]
    rows = []
    for s, g in pairs.groupby("system", sort=True):
        ok = g["d"].notna()
        g = g[ok]
        if g.empty:
            continue
        lo, hi = bootstrap_ci(g["d"].to_numpy(), clusters=g["utt_id"].tolist(), seeds=_seeds(g), n_boot=n_boot,
                              ci=ci, seed=derive_seed(seed, "drop", metric, s))
        rows.append({"system": s, "drop": float(g["d"].mean()), "drop_ci_low": lo, "drop_ci_high": hi,
                     "n_pairs": int(len(g)), "clean": float(g["_v_0"].mean()), "corrupted": float(g["_v_c"].mean()),
                     "kinds": ", ".join(sorted(g["corruption"].astype(str).unique()))})
    return pd.DataFrame(rows)


#: the headline columns of :func:`reliability_table` (frame-paired), first after the labels
_PAIRED_COLUMNS = ("auc_paired", "auc_paired_ci_low", "auc_paired_ci_high", "weight_drop_paired",
                   "weight_drop_paired_ci_low", "weight_drop_paired_ci_high", "n_pairs_paired")


def reliability_table(results: pd.DataFrame, frames: pd.DataFrame, *, drop_metric: str = "delta_si_sdr",
                      n_boot: int = 2000, ci: float = 0.95, seed: int = 0,
                      systems: Optional[Sequence[str]] = None, pairs: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """One row per system with weights (and per system with a metric drop): the numbers of the
    module docstring, the paired AUC first. ``frames`` is :func:`frame_table` (may be empty:
    then the within-utterance numbers come from the per-row weight summaries of the results
    table, and the paired ones are NaN: they need the traces). ``pairs``: :func:`paired_weights`
    of ``frames`` when already computed."""
    items = item_weights(frames) if frames is not None and not frames.empty else _item_weights_from_results(results)
    drop = metric_drop(results, drop_metric, n_boot=n_boot, ci=ci, seed=seed)
    if pairs is None:
        pairs = paired_weights(frames)
    paired = paired_summary(pairs, (), n_boot=n_boot, ci=ci, seed=seed)
    rows = {}
    if not items.empty:
        for s, g in items.groupby("system", sort=True):
            auc = g["visual_weight_auc"].to_numpy(np.float64)
            ok = np.isfinite(auc)
            lo, hi = bootstrap_ci(auc, clusters=g["utt_id"].tolist() if "utt_id" in g else None, seeds=_seeds(g),
                                  n_boot=n_boot, ci=ci, seed=derive_seed(seed, "auc", s))
            pooled = np.nan
            if frames is not None and not frames.empty:
                f = frames[(frames["system"] == s) & frames["item_id"].isin(g.loc[ok, "item_id"])]
                if not f.empty:
                    pooled = roc_auc(f["visual_weight"].to_numpy(), f["corrupted"].to_numpy())
            cleanvid = g[g["corruption"].astype(str) == "none"] if "corruption" in g else g
            rho = p_rho = np.nan
            if ("snr_db" in cleanvid and cleanvid["snr_db"].nunique() > 1 and len(cleanvid) > 2
                    and cleanvid["visual_weight_mean"].nunique() > 1):
                res = sps.spearmanr(cleanvid["snr_db"].astype(float), cleanvid["visual_weight_mean"].astype(float))
                rho, p_rho = float(res.statistic), float(res.pvalue)
            rows[s] = {
                "system": s, "n_items": int(len(g)), "n_items_auc_within": int(ok.sum()),
                "weight_clean_frames": float(np.nanmean(g["visual_weight_mean_clean_frames"])) if g["visual_weight_mean_clean_frames"].notna().any() else np.nan,
                "weight_corrupted_frames": float(np.nanmean(g["visual_weight_mean_corrupted_frames"])) if g["visual_weight_mean_corrupted_frames"].notna().any() else np.nan,
                "auc_within": float(np.nanmean(auc)) if ok.any() else np.nan, "auc_within_ci_low": lo,
                "auc_within_ci_high": hi, "auc_within_pooled": pooled, "corr_snr": rho, "corr_snr_p": p_rho,
            }
    for r in paired.to_dict("records"):
        row = rows.setdefault(r["system"], {"system": r["system"]})
        row.update({k: r[k] for k in ("auc_paired", "auc_paired_ci_low", "auc_paired_ci_high", "weight_drop_paired",
                                      "weight_drop_paired_ci_low", "weight_drop_paired_ci_high")})
        row["n_pairs_paired"] = r["n_pairs"]
    for r in drop.itertuples(index=False):
        row = rows.setdefault(r.system, {"system": r.system})
        row.update({"si_sdr_drop" if drop_metric == "delta_si_sdr" else f"{drop_metric}_drop": r.drop,
                    "drop_ci_low": r.drop_ci_low, "drop_ci_high": r.drop_ci_high, "drop_n_pairs": r.n_pairs})
    sources = frames.groupby("system")["weight_source"].agg(lambda s: ", ".join(sorted(set(s)))) \
        if frames is not None and not frames.empty and "weight_source" in frames else pd.Series(dtype=str)
    with_model = results
    if "model_id" in results:
        with_model = results[results["model_id"].fillna("").astype(str).str.strip() != ""]
    fusion_of = with_model.groupby("system")["fusion"].first() if {"system", "fusion"} <= set(with_model.columns) \
        else pd.Series(dtype=object)
    for s in (with_model["system"].dropna().unique() if "system" in with_model else []):
        rows.setdefault(s, {"system": s})
    for s, row in rows.items():
        has = (not items.empty) and (s in set(items["system"]))
        row["weights"] = (sources.get(s) or "yes") if has else "no weights"
        row["control"] = control_of(fusion_of.get(s))
    out = pd.DataFrame(list(rows.values()))
    if not out.empty:  # the labels next to the system, then the headline (paired) AUC, then the rest
        for c in _PAIRED_COLUMNS:
            if c not in out:
                out[c] = np.nan
        first = ["system", "control", "weights", *_PAIRED_COLUMNS]
        out = out[first + [c for c in out.columns if c not in first]]
    if systems is not None and not out.empty:
        order = {s: i for i, s in enumerate(systems)}
        out = out.sort_values("system", key=lambda c: c.map(lambda s: order.get(s, 1e9))).reset_index(drop=True)
    return out


def sample_frames(frames: pd.DataFrame, max_per_group: int, by: Sequence[str], seed: int = 0) -> pd.DataFrame:
    """A deterministic subsample of at most ``max_per_group`` frames per group (for plots)."""
    if frames.empty:
        return frames
    parts = []
    for key, g in frames.groupby(list(by), dropna=False, sort=True):
        if len(g) > max_per_group:
            key = key if isinstance(key, tuple) else (key,)
            r = np.random.default_rng(derive_seed(seed, "sample", *key))
            g = g.iloc[np.sort(r.choice(len(g), max_per_group, replace=False))]
        parts.append(g)
    return pd.concat(parts, ignore_index=True)
