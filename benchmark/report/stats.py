"""Statistics of a results table: means with hierarchical bootstrap confidence intervals, and
paired tests.

(Over 400 lines on purpose: the statistics every table and chart relies on -- the hierarchical
bootstrap, its summaries and the paired tests -- kept next to the derivation below.)

Hierarchical bootstrap (training seeds, then utterances)
--------------------------------------------------------
A result row is one (utterance, condition, system[, training seed]). Its value depends on the
test utterance (some utterances are hard for every system) and, for trained systems, on the
training run (``train_seed``: the same model trained again with another seed). A mean over rows
therefore has two sources of sampling error, and every CI of the report resamples both levels.
One bootstrap replicate of a group (e.g. one system at one SNR) is drawn as:

1. **Training seeds**: the group's S seeds are drawn S times with replacement (multinomial
   counts ``c_s``).
2. **Utterances**: the group's U test utterances are drawn U times with replacement
   (multinomial counts ``w_u``). A drawn utterance brings *all its rows in the group*: every
   condition of the group (noises, SNRs, video corruptions) under every drawn seed. The
   utterance draw is shared by the drawn seeds (``utterances="shared"``, the default),
   because every seed's models are scored on the same test utterances: seeds and utterances
   are *crossed*, not nested. Drawing the utterances independently per drawn seed
   (``utterances="per_seed"``, the textbook nested scheme) would treat an utterance's
   difficulty as independent across seeds and shrink the utterance variance by about S
   (``tests/test_stats_hierarchical.py`` measures the under-coverage).

The replicate's statistic is the mean of all values of the drawn cells, each (seed, utterance)
cell weighted ``c_s * w_u``: ``sum(c_s w_u sum_su) / sum(c_s w_u n_su)``; a cell that is
missing (NaN or failed rows) weighs nothing. The CI is the percentile interval of the
replicates. With one seed (or no ``train_seed`` column; rows with an empty seed, e.g. the
baselines that are not trained, form one level) step 1 is skipped and no random number is
spent on it, so the result is *exactly* the utterance (cluster) bootstrap with the same
draws. With ``clusters=None`` each row is its own utterance. Known limit: the seed level sees
only S values; with 3 seeds its bootstrap variance is (S-1)/S of the unbiased one and the
percentile interval is coarse, so when the between-seed spread dominates the CI under-covers
(measured in ``docs/statistics.md``).

* :func:`bootstrap_ci` -- the CI of one set of values (optionally with utterance and seed
  labels).
* :func:`summarize` -- mean, median, CI and the counts of rows / NaN rows / failed rows /
  seeds / utterances of a metric by any grouping; vectorised: the groups that have the same
  seeds and utterances share one set of draws (common random numbers, seeded by the metric
  and those labels), so a large study (224,000 rows) is summarised in seconds.
* :func:`paired_tests` -- Wilcoxon signed-rank tests (scipy) of each system against reference
  systems on the same (utterance, condition, training seed) triples, Holm-corrected, with
  effect sizes (matched-pairs rank-biserial correlation and the mean difference with its
  hierarchical bootstrap CI).

Every random draw is seeded by :func:`benchmark.seeding.derive_seed`. See
``docs/statistics.md``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from benchmark.schema import TRAIN_SEED_COLUMN
from benchmark.seeding import derive_seed

log = logging.getLogger(__name__)

_CHUNK = 2_000_000  # bootstrap weights drawn per chunk (n_boot x n_utterances elements)
SEED_COLUMN = TRAIN_SEED_COLUMN  # the training seed of a result row
UTTERANCE_DRAWS = ("shared", "per_seed")


def _factorize(labels: Sequence[object] | pd.Series) -> tuple[np.ndarray, list]:
    """(integer codes in order of first appearance, the labels); NaN/None is a level of its own."""
    ser = labels if isinstance(labels, pd.Series) else pd.Series(list(labels), dtype=object)
    codes, uniq = pd.factorize(ser, use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64), list(pd.Series(uniq, dtype=object).tolist())


def _codes(labels: Sequence[object] | pd.Series) -> np.ndarray:
    """Integer codes of labels in order of first appearance; NaN/None is a level of its own."""
    return _factorize(labels)[0]


def _matmul_t(w: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``w [B, U] @ m[G, U].T`` -> ``[B, G]`` (a matrix-vector product when G == 1)."""
    return (w @ m[0])[:, None] if m.shape[0] == 1 else w @ m.T


def bootstrap_replicates(sums: np.ndarray, counts: np.ndarray, *, n_boot: int, seed: int,
                         utterances: str = "shared") -> np.ndarray:
    """Hierarchical bootstrap replicates of weighted means, vectorised over groups.

    ``sums``/``counts``: ``[G, S, U]`` -- per group, training seed and utterance, the sum and the
    number of the valid values (zero where a cell is missing). Returns ``[n_boot, G]``: per
    replicate, ``sum(c_s w_su sums) / sum(c_s w_su counts)`` with ``c ~ Multinomial(S, 1/S)``
    (skipped when S == 1) and ``w ~ Multinomial(U, 1/U)`` shared by the seeds
    (``utterances="shared"``) or, with ``"per_seed"``, drawn independently for each drawn
    seed (``w_s ~ Multinomial(c_s U, 1/U)``, the sum of ``c_s`` independent draws; then the
    weight of a cell is ``w_su`` alone). Every group uses the same draws.
    """
    if utterances not in UTTERANCE_DRAWS:
        raise ValueError(f"utterances={utterances!r}: choose from {UTTERANCE_DRAWS}")
    sums = np.asarray(sums, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    G, S, U = sums.shape
    rng = np.random.default_rng(seed)
    rng_seeds = np.random.default_rng(derive_seed(seed, "train-seeds")) if S > 1 else None
    out = np.empty((n_boot, G))
    per = max(1, _CHUNK // max(U, 1))
    pu = np.full(U, 1.0 / U)
    ps = np.full(S, 1.0 / S)
    for start in range(0, n_boot, per):
        m = min(per, n_boot - start)
        if S == 1:
            w = rng.multinomial(U, pu, size=m).astype(np.float64)
            num, den = _matmul_t(w, sums[:, 0, :]), _matmul_t(w, counts[:, 0, :])
        else:
            c = rng_seeds.multinomial(S, ps, size=m)
            num = np.zeros((m, G))
            den = np.zeros((m, G))
            if utterances == "shared":
                w = rng.multinomial(U, pu, size=m).astype(np.float64)
                for s in range(S):
                    cs = c[:, s, None].astype(np.float64)
                    num += cs * _matmul_t(w, sums[:, s, :])
                    den += cs * _matmul_t(w, counts[:, s, :])
            else:
                for s in range(S):
                    ws = rng.multinomial(c[:, s] * U, pu).astype(np.float64)
                    num += _matmul_t(ws, sums[:, s, :])
                    den += _matmul_t(ws, counts[:, s, :])
        out[start:start + m] = num / np.maximum(den, 1e-300)
    return out


def _cells(v: np.ndarray, si: np.ndarray, ui: np.ndarray, gi: np.ndarray, G: int, S: int, U: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Per (group, seed, utterance) cell: the sum and the count of ``v`` -> two ``[G, S, U]``."""
    flat = (gi * S + si) * U + ui
    sums = np.bincount(flat, weights=v, minlength=G * S * U).reshape(G, S, U)
    counts = np.bincount(flat, minlength=G * S * U).astype(np.float64).reshape(G, S, U)
    return sums, counts


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    clusters: Optional[Sequence[object]] = None,
    seeds: Optional[Sequence[object]] = None,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    utterances: str = "shared",
) -> tuple[float, float]:
    """Percentile (hierarchical) bootstrap CI of the mean of ``values`` (NaNs dropped).

    ``clusters``: the utterance of each value (whole utterances are resampled; None: each value
    is its own). ``seeds``: the training seed of each value; with two or more seeds the seeds
    are resampled first (module docstring). Returns ``(nan, nan)`` when nothing can be
    resampled (fewer than two utterances and fewer than two seeds) or no value is left.
    """
    x = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(x)
    cl = np.arange(len(x)) if clusters is None else _codes(clusters)
    sd = np.zeros(len(x), dtype=np.int64) if seeds is None else _codes(seeds)
    for name, arr in (("clusters", cl), ("seeds", sd)):
        if len(arr) != len(x):
            raise ValueError(f"{name} has {len(arr)} entries for {len(x)} values")
    x, cl, sd = x[ok], cl[ok], sd[ok]
    if x.size == 0:
        return float("nan"), float("nan")
    ucodes, ui = np.unique(cl, return_inverse=True)
    scodes, si = np.unique(sd, return_inverse=True)
    U, S = len(ucodes), len(scodes)
    if U < 2 and S < 2:
        return float("nan"), float("nan")
    sums, counts = _cells(x, si, ui, np.zeros(len(x), dtype=np.int64), 1, S, U)
    stats = bootstrap_replicates(sums, counts, n_boot=n_boot, seed=seed, utterances=utterances)[:, 0]
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
    seed_col: Optional[str] = SEED_COLUMN,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Per group of ``by``: ``n`` rows, ``n_nan`` (NaN metric, failed rows included), ``n_failed``,
    ``n_valid``, ``n_seeds`` and ``n_utterances`` (training seeds and utterances with a valid
    value), ``mean``, ``median``, ``std``, ``ci_low``/``ci_high`` (hierarchical bootstrap over
    ``seed_col`` and ``cluster``, module docstring; a missing column is one level).

    Vectorised: the groups with the same seeds and utterances share one set of draws, seeded by
    ``derive_seed(seed, "summarize", metric, [<their seed labels>,] <their utterance labels>)``
    (the seed labels only with two or more seeds),
    so each group's CI equals :func:`bootstrap_ci` of its rows with that seed. A missing
    ``metric`` column raises ``KeyError`` naming it; groups are sorted by ``by``.
    """
    if metric not in df:
        raise KeyError(f"metric column {metric!r} not in results (columns: {', '.join(map(str, df.columns))})")
    by = list(by)
    missing = [b for b in by if b not in df]
    if missing:
        raise KeyError(f"grouping column(s) {missing} not in results")
    v_all = pd.to_numeric(df[metric], errors="coerce").to_numpy(np.float64)
    failed = _failed_mask(df).to_numpy(bool)
    use_cluster = cluster if cluster and cluster in df else None
    use_seed = seed_col if seed_col and seed_col in df else None
    if by:
        gb = df.groupby(by, dropna=False, sort=True)
        gi_all = gb.ngroup().to_numpy(np.int64)
        idx = gb.size().index
        keys = [k if isinstance(k, tuple) else (k,) for k in idx]
    else:
        gi_all = np.zeros(len(df), dtype=np.int64)
        keys = [()] if len(df) else []
    G = len(keys)
    valid_all = np.isfinite(v_all)
    ucode, uniq_u = _factorize(df[use_cluster].reset_index(drop=True)) if use_cluster else (np.arange(len(df)), list(range(len(df))))
    scode, uniq_s = _factorize(df[use_seed].reset_index(drop=True)) if use_seed else (np.zeros(len(df), np.int64), [None])
    # descriptive statistics per group
    n = np.bincount(gi_all, minlength=G)
    nf = np.bincount(gi_all, weights=failed, minlength=G).astype(int)
    vv = pd.Series(np.where(valid_all, v_all, np.nan))
    grp = vv.groupby(gi_all)
    desc = pd.DataFrame({"n_valid": grp.count(), "mean": grp.mean(), "median": grp.median(),
                         "std": grp.std(ddof=1)}).reindex(range(G))
    # bootstrap: groups with the same (seeds, utterances) share draws
    gi, v, ui_all, si_all = gi_all[valid_all], v_all[valid_all], ucode[valid_all], scode[valid_all]
    nu, ns = len(uniq_u), len(uniq_s)
    pu = np.unique(gi * nu + ui_all)
    ps = np.unique(gi * ns + si_all)
    pairs_u, pairs_s = np.stack([pu // nu, pu % nu]), np.stack([ps // ns, ps % ns])
    u_of = np.split(pairs_u[1], np.searchsorted(pairs_u[0], np.arange(1, G)))
    s_of = np.split(pairs_s[1], np.searchsorted(pairs_s[0], np.arange(1, G)))
    sigs: dict[tuple[bytes, bytes], list[int]] = {}
    for g in range(G):
        sigs.setdefault((s_of[g].tobytes(), u_of[g].tobytes()), []).append(g)
    lo = np.full(G, np.nan)
    hi = np.full(G, np.nan)
    alpha = (1.0 - ci) / 2.0
    for (sb, ub), glist in sigs.items():
        su, uu = np.frombuffer(sb, dtype=np.int64), np.frombuffer(ub, dtype=np.int64)
        S, U = len(su), len(uu)
        if (U < 2 and S < 2) or not glist:
            continue
        garr = np.asarray(glist)
        rows = np.isin(gi, garr)
        lg = np.searchsorted(garr, gi[rows])
        ls = np.searchsorted(su, si_all[rows])
        lu = np.searchsorted(uu, ui_all[rows])
        sums, counts = _cells(v[rows], ls, lu, lg, len(garr), S, U)
        seed_part = (tuple(uniq_s[i] for i in su),) if S > 1 else ()  # one seed: as without seeds
        bseed = derive_seed(seed, "summarize", metric, *seed_part, tuple(uniq_u[i] for i in uu))
        reps = bootstrap_replicates(sums, counts, n_boot=n_boot, seed=bseed)
        q = np.quantile(reps, [alpha, 1.0 - alpha], axis=0)
        lo[garr], hi[garr] = q[0], q[1]
    rows_out = []
    for g, key in enumerate(keys):
        rows_out.append({
            **dict(zip(by, key)), "metric": metric, "n": int(n[g]), "n_nan": int(n[g] - desc.at[g, "n_valid"]),
            "n_failed": int(nf[g]), "n_valid": int(desc.at[g, "n_valid"]),
            "n_seeds": int(len(s_of[g])), "n_utterances": int(len(u_of[g])),
            "mean": float(desc.at[g, "mean"]), "median": float(desc.at[g, "median"]),
            "std": float(desc.at[g, "std"]), "ci_low": float(lo[g]), "ci_high": float(hi[g]),
        })
    return pd.DataFrame(rows_out)


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


def has_model_mask(df: pd.DataFrame) -> pd.Series:
    """Boolean mask of the rows of a system with a model (a non-empty ``model_id``; NaN and blank
    count as none): the baselines (noisy, oracle Wiener, NMF) are the rows without one. A frame
    without a ``model_id`` column has a model on every row."""
    if "model_id" not in df:
        return pd.Series(True, index=df.index)
    return df["model_id"].fillna("").astype(str).str.strip() != ""


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
    pair_on: Sequence[str] = ("utt_id", "condition_id", SEED_COLUMN),
    within: Sequence[str] = ("algorithm",),
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    system_col: str = "system",
) -> pd.DataFrame:
    """Wilcoxon signed-rank test of every system against every reference system.

    Pairs are rows with equal ``pair_on`` values (those columns that exist: by default the
    utterance, the condition and the training seed, so a model is compared with the reference
    trained with the same seed); systems are compared only with references that
    share their ``within`` values (the same enhancement algorithm; an outside system, model
    ``external``, with every reference) and only when they have a
    model (rows with an empty ``model_id`` are baselines, not compared). ``by`` splits the test
    (e.g. one test per SNR). The Holm correction runs over all tests of the returned table
    (one family per metric). The CI of the mean difference is the hierarchical bootstrap of the
    paired differences (training seeds, then utterances). Columns: system, reference, *by,
    n_pairs, n_seeds, n_utterances, mean_system,
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
    systems = list(pd.unique(df.loc[has_model_mask(df), system_col]))
    sys_within = df.drop_duplicates(system_col).set_index(system_col)[within].astype(str) if within else None
    # outside systems (model "external": no algorithm of the suite) are compared with every reference
    external = set(df.loc[df["model"].astype(str) == "external", system_col]) if "model" in df else set()
    by = list(by)
    keys = list(dict.fromkeys(pair_on + by))
    vals = pd.to_numeric(df[metric], errors="coerce")
    wide = (df.assign(_v=vals).drop_duplicates(keys + [system_col])
            .pivot(index=keys, columns=system_col, values="_v"))
    utt = wide.index.get_level_values("utt_id").to_numpy() if "utt_id" in keys else None
    tseed = wide.index.get_level_values(SEED_COLUMN).to_numpy() if SEED_COLUMN in keys else None
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
            if within and s not in external and not (sys_within.loc[s] == sys_within.loc[ref]).all():
                continue
            A, B = wide[s].to_numpy(np.float64), wide[ref].to_numpy(np.float64)
            for key, ix in groups.items():
                va, vb = A[ix], B[ix]
                ok = np.isfinite(va) & np.isfinite(vb)
                w = wilcoxon_paired(va, vb)
                u_ok = utt[ix][ok] if utt is not None else None
                s_ok = tseed[ix][ok] if tseed is not None else None
                if n_boot > 0:
                    lo, hi = bootstrap_ci(va[ok] - vb[ok], clusters=u_ok, seeds=s_ok, n_boot=n_boot,
                                          ci=ci, seed=derive_seed(seed, "paired", metric, s, ref, *key))
                else:
                    lo = hi = float("nan")
                rows.append({
                    "metric": metric, "system": s, "reference": ref, **dict(zip(by, key)),
                    "n_pairs": w.n_pairs,
                    "n_seeds": int(len(pd.unique(pd.Series(s_ok, dtype=object)))) if s_ok is not None else 1,
                    "n_utterances": int(len(pd.unique(pd.Series(u_ok, dtype=object)))) if u_ok is not None else w.n_pairs,
                    "mean_system": float(va[ok].mean()) if ok.any() else np.nan,
                    "mean_reference": float(vb[ok].mean()) if ok.any() else np.nan,
                    "mean_diff": w.mean_diff, "diff_ci_low": lo, "diff_ci_high": hi, "median_diff": w.median_diff,
                    "statistic": w.statistic, "p": w.pvalue, "rank_biserial": w.rank_biserial,
                })
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=["metric", "system", "reference", *by, "n_pairs", "n_seeds", "n_utterances",
                                     "mean_system", "mean_reference",
                                     "mean_diff", "diff_ci_low", "diff_ci_high", "median_diff", "statistic", "p",
                                     "p_holm", "rank_biserial"])
    out["p_holm"] = holm(out["p"].to_numpy())
    cols = [c for c in out.columns if c != "rank_biserial"] + ["rank_biserial"]
    return out[cols]
