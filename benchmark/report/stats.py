"""Statistics of a results table: means with bootstrap confidence intervals, and paired tests.

* :func:`bootstrap_ci` -- percentile bootstrap CI of a mean, NaN-aware; with ``clusters`` it
  resamples whole clusters (utterances), so rows of the same utterance under several
  conditions are not treated as independent.
* :func:`summarize` -- mean, median, CI and the counts of rows / NaN rows / failed rows of a
  metric by any grouping.
* :func:`paired_tests` -- Wilcoxon signed-rank tests (scipy) of each system against reference
  systems on the same (utterance, condition) pairs, Holm-corrected, with effect sizes
  (matched-pairs rank-biserial correlation and the mean difference with a bootstrap CI).

Every random draw is seeded by :func:`benchmark.seeding.derive_seed` of the group identity.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from benchmark.seeding import derive_seed

log = logging.getLogger(__name__)

_CHUNK = 2_000_000  # bootstrap weights drawn per chunk (n_boot x n_clusters elements)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    clusters: Optional[Sequence[object]] = None,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (NaNs dropped).

    With ``clusters`` (e.g. the utterance id of each value) whole clusters are resampled with
    replacement and the statistic is the mean of all values of the drawn clusters. Returns
    ``(nan, nan)`` when fewer than two clusters (or values) remain.
    """
    x = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(x)
    if clusters is None:
        cl = np.arange(len(x))
    else:
        cl = np.asarray(pd.factorize(pd.Series(list(clusters), dtype=object))[0])
        if len(cl) != len(x):
            raise ValueError(f"clusters has {len(cl)} entries for {len(x)} values")
    x, cl = x[ok], cl[ok]
    if x.size == 0:
        return float("nan"), float("nan")
    codes, inv = np.unique(cl, return_inverse=True)
    k = len(codes)
    if k < 2:
        return float("nan"), float("nan")
    sums = np.bincount(inv, weights=x, minlength=k)
    counts = np.bincount(inv, minlength=k).astype(np.float64)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    per = max(1, _CHUNK // k)
    p = np.full(k, 1.0 / k)
    for start in range(0, n_boot, per):
        m = min(per, n_boot - start)
        w = rng.multinomial(k, p, size=m).astype(np.float64)
        stats[start:start + m] = (w @ sums) / np.maximum(w @ counts, 1e-300)
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _failed_mask(df: pd.DataFrame) -> pd.Series:
    if "status" in df:
        return df["status"].astype(str).str.lower().eq("failed")
    return pd.Series(False, index=df.index)


def summarize(
    df: pd.DataFrame,
    metric: str,
    by: Sequence[str] = ("system",),
    *,
    cluster: Optional[str] = "utt_id",
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Per group of ``by``: ``n`` rows, ``n_nan`` (NaN metric, failed rows included), ``n_failed``,
    ``n_valid``, ``mean``, ``median``, ``std``, ``ci_low``/``ci_high`` (bootstrap over ``cluster``).

    A missing ``metric`` column raises ``KeyError`` naming it; groups are sorted by ``by``.
    """
    if metric not in df:
        raise KeyError(f"metric column {metric!r} not in results (columns: {', '.join(map(str, df.columns))})")
    by = list(by)
    missing = [b for b in by if b not in df]
    if missing:
        raise KeyError(f"grouping column(s) {missing} not in results")
    work = df.copy()
    work["_v"] = pd.to_numeric(work[metric], errors="coerce")
    work["_failed"] = _failed_mask(work)
    use_cluster = cluster if cluster and cluster in work else None
    rows = []
    groups = work.groupby(by, dropna=False, sort=True) if by else [((), work)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        v = g["_v"].to_numpy(np.float64)
        valid = np.isfinite(v)
        lo, hi = bootstrap_ci(v, clusters=g[use_cluster].tolist() if use_cluster else None, n_boot=n_boot,
                              ci=ci, seed=derive_seed(seed, "summarize", metric, *key))
        rows.append({
            **dict(zip(by, key)), "metric": metric, "n": int(len(g)), "n_nan": int((~valid).sum()),
            "n_failed": int(g["_failed"].sum()), "n_valid": int(valid.sum()),
            "mean": float(np.mean(v[valid])) if valid.any() else float("nan"),
            "median": float(np.median(v[valid])) if valid.any() else float("nan"),
            "std": float(np.std(v[valid], ddof=1)) if valid.sum() > 1 else float("nan"),
            "ci_low": lo, "ci_high": hi,
        })
    return pd.DataFrame(rows)


def summarize_many(df: pd.DataFrame, metrics: Iterable[str], by: Sequence[str] = ("system",), **kw) -> pd.DataFrame:
    """:func:`summarize` of several metrics stacked in one long table (column ``metric``);
    metrics absent from ``df`` are skipped."""
    parts = [summarize(df, m, by, **kw) for m in metrics if m in df]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and do not count)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.where(np.isfinite(p))[0]
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out


def rank_biserial(diff: Sequence[float] | np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (zeros dropped):
    ``(R+ - R-) / (R+ + R-)`` with R+/R- the rank sums of positive/negative differences
    (ranks of ``|d|``, ties averaged). +1: every pair favours the first system."""
    d = np.asarray(diff, dtype=np.float64)
    d = d[np.isfinite(d) & (d != 0)]
    if d.size == 0:
        return float("nan")
    r = sps.rankdata(np.abs(d))
    rp, rn = r[d > 0].sum(), r[d < 0].sum()
    return float((rp - rn) / (rp + rn))


@dataclass
class WilcoxonResult:
    """One paired Wilcoxon signed-rank test (``a - b``)."""

    n_pairs: int
    statistic: float
    pvalue: float
    mean_diff: float
    median_diff: float
    rank_biserial: float


def wilcoxon_paired(a: Sequence[float], b: Sequence[float]) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of paired samples (pairs with a NaN dropped) via
    :func:`scipy.stats.wilcoxon` (default zero handling ``"wilcox"``). All-zero or fewer than
    two differences give a NaN p-value."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = int(d.size)
    if n == 0:
        return WilcoxonResult(0, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"))
    if n < 2 or np.all(d == 0):
        stat, p = float("nan"), float("nan")
    else:
        res = sps.wilcoxon(d)
        stat, p = float(res.statistic), float(res.pvalue)
    return WilcoxonResult(n, stat, p, float(d.mean()), float(np.median(d)), rank_biserial(d))


def select_systems(df: pd.DataFrame, selectors: Sequence[str], system_col: str = "system") -> list[str]:
    """Systems matching any ``"column=value"`` selector (e.g. ``"fusion=concat"``,
    ``"model=a-vae"``, ``"system=noisy"``); selectors on absent columns match nothing."""
    found: list[str] = []
    for sel in selectors:
        if "=" not in sel:
            raise ValueError(f"reference selector {sel!r}: expected COLUMN=VALUE, e.g. fusion=concat")
        col, val = (s.strip() for s in sel.split("=", 1))
        if col not in df:
            continue
        hit = df.loc[df[col].astype(str) == val, system_col]
        for s in hit.drop_duplicates():
            if s not in found:
                found.append(s)
    return found


DEFAULT_REFERENCES = ("fusion=concat", "model=a-vae")


def paired_tests(
    df: pd.DataFrame,
    metric: str,
    *,
    references: Sequence[str] = DEFAULT_REFERENCES,
    by: Sequence[str] = (),
    pair_on: Sequence[str] = ("utt_id", "condition_id"),
    within: Sequence[str] = ("algorithm",),
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    system_col: str = "system",
) -> pd.DataFrame:
    """Wilcoxon signed-rank test of every system against every reference system.

    Pairs are rows with equal ``pair_on`` values; systems are compared only with references that
    share their ``within`` values (the same enhancement algorithm) and only when they have a
    model (rows with an empty ``model_id`` are baselines, not compared). ``by`` splits the test
    (e.g. one test per SNR). The Holm correction runs over all tests of the returned table
    (one family per metric). Columns: system, reference, *by, n_pairs, mean_system,
    mean_reference, mean_diff, diff_ci_low, diff_ci_high, median_diff, statistic, p, p_holm,
    rank_biserial. ``n_boot=0`` skips the bootstrap CI of the difference (NaN).
    """
    if metric not in df:
        raise KeyError(f"metric column {metric!r} not in results")
    refs = select_systems(df, references, system_col)
    within = [w for w in within if w in df]
    pair_on = [c for c in pair_on if c in df]
    if not pair_on:
        raise KeyError("paired tests need utt_id/condition_id columns to pair rows")
    has_model = df["model_id"].fillna("").astype(str).str.strip() != "" if "model_id" in df else pd.Series(True, index=df.index)
    systems = list(dict.fromkeys(df.loc[has_model, system_col]))
    sys_within = df.drop_duplicates(system_col).set_index(system_col)[within].astype(str) if within else None
    by = list(by)
    keys = list(dict.fromkeys(pair_on + by))
    vals = pd.to_numeric(df[metric], errors="coerce")
    wide = (df.assign(_v=vals).drop_duplicates(keys + [system_col])
            .pivot(index=keys, columns=system_col, values="_v"))
    utt = wide.index.get_level_values("utt_id").to_numpy() if "utt_id" in keys else None
    if by:
        gkeys = pd.MultiIndex.from_frame(wide.index.to_frame(index=False)[by])
        groups = {k if isinstance(k, tuple) else (k,): np.asarray(ix) for k, ix in
                  pd.Series(np.arange(len(wide))).groupby([gkeys.get_level_values(i) for i in range(len(by))], sort=True).groups.items()}
    else:
        groups = {(): np.arange(len(wide))}
    rows = []
    for ref in refs:
        for s in systems:
            if s == ref or s not in wide or ref not in wide:
                continue
            if within and not (sys_within.loc[s] == sys_within.loc[ref]).all():
                continue
            A, B = wide[s].to_numpy(np.float64), wide[ref].to_numpy(np.float64)
            for key, ix in groups.items():
                va, vb = A[ix], B[ix]
                ok = np.isfinite(va) & np.isfinite(vb)
                w = wilcoxon_paired(va, vb)
                if n_boot > 0:
                    lo, hi = bootstrap_ci(va[ok] - vb[ok], clusters=utt[ix][ok] if utt is not None else None, n_boot=n_boot,
                                          ci=ci, seed=derive_seed(seed, "paired", metric, s, ref, *key))
                else:
                    lo = hi = float("nan")
                rows.append({
                    "metric": metric, "system": s, "reference": ref, **dict(zip(by, key)),
                    "n_pairs": w.n_pairs, "mean_system": float(va[ok].mean()) if ok.any() else np.nan,
                    "mean_reference": float(vb[ok].mean()) if ok.any() else np.nan,
                    "mean_diff": w.mean_diff, "diff_ci_low": lo, "diff_ci_high": hi, "median_diff": w.median_diff,
                    "statistic": w.statistic, "p": w.pvalue, "rank_biserial": w.rank_biserial,
                })
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=["metric", "system", "reference", *by, "n_pairs", "mean_system", "mean_reference",
                                     "mean_diff", "diff_ci_low", "diff_ci_high", "median_diff", "statistic", "p",
                                     "p_holm", "rank_biserial"])
    out["p_holm"] = holm(out["p"].to_numpy())
    cols = [c for c in out.columns if c != "rank_biserial"] + ["rank_biserial"]
    return out[cols]
