"""Speech-quality metrics through the standard packages; NaN plus a reason on failure.

Registry :data:`METRICS` (name -> :class:`Metric`), filled by one module per metric family in this
package, each of which declares, next to the function, the metric's exact ``definition`` and the
``package`` (PyPI distribution) it computes it with: that declaration is the one source of the
methods text of the report and of ``run.json`` (:func:`metric_provenance`). The column of a
metric is its name, except the legacy ``pesq`` whose column carries ``metrics.pesq_mode``:

* ``pesq_wb`` / ``pesq_nb`` (:mod:`.pesq_p862`): ITU-T P.862 via the ``pesq`` package, wide-band
  (P.862.2) and narrow-band; both columns are MOS-LQO (the narrow-band one is the P.862.1 mapping
  of the raw P.862 score: the package returns only the mapped value). ``pesq``: the one mode
  named by ``pesq_mode`` (column ``pesq_<mode>``), kept for older presets.
* ``stoi`` / ``estoi`` (:mod:`.stoi`): ``pystoi.stoi(..., extended=False/True)``.
* ``si_sdr`` (:mod:`.sisdr`): hand-written scale-invariant SDR (Le Roux et al. 2019).
* ``sdr``, ``sir``, ``sar`` (:mod:`.bss_eval`): BSS Eval v3 criteria from ``mir_eval.separation``.
* ``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl``, ``dnsmos_p808`` (:mod:`.dnsmos`): the
  non-intrusive DNSMOS P.835 / P.808 models through the optional ``speechmos`` package (extra
  ``dnsmos``); they ignore the reference.

``score_pair(ref, est, mixture=None, names=...)`` returns ``<col>`` and ``<col>_error`` for
each metric and, with a mixture, ``input_<col>``, ``input_<col>_error`` and ``delta_<col> =
<col> - input_<col>``. A metric that fails (PESQ on silence or on too-short audio, for
example) gives NaN and a reason string, never 0 and never an exception; the reason is ""
when fine. Two names with the same column (``pesq`` with mode wb and ``pesq_wb``) are scored
once. ``score_many`` scores many pairs in parallel processes (joblib), in input order.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from benchmark.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("si_sdr", "pesq_wb", "pesq_nb", "stoi", "estoi", "sdr")
MAX_LENGTH_MISMATCH = 1024  # samples; longer mismatches between reference and estimate are errors


class MetricError(ValueError):
    """A metric cannot be computed on this input (the message is the reason)."""


@dataclass(frozen=True)
class Metric:
    """A named metric: ``fn(ref, est, *, sr, mixture, pesq_mode, cache) -> float`` (higher is
    better). ``definition``: what exactly is computed (the report's methods text); ``package``:
    the PyPI distribution that computes it (None: written here), whose version is recorded;
    ``needs_reference``: False for non-intrusive metrics (the reference is passed and ignored)."""

    name: str
    fn: Callable[..., float]
    doc: str
    needs_mixture: bool = False
    definition: str = ""
    package: Optional[str] = None
    needs_reference: bool = True

    def column(self, pesq_mode: str = "wb") -> str:
        return f"pesq_{pesq_mode}" if self.name == "pesq" else self.name


# the metrics below plus every module of this package (imported on first lookup): a new metric is
# one new file here that decorates its function with :func:`metric` (``docs/extending.md``)
METRICS: Registry = Registry("metric", package="benchmark.metrics")


def metric(name: str, doc: str, needs_mixture: bool = False, *, definition: str = "", package: Optional[str] = None,
           needs_reference: bool = True) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Register ``fn(ref, est, *, sr, mixture, pesq_mode, cache) -> float`` (higher is better;
    raise :class:`MetricError` with a reason on failure) as metric ``name``, column ``name``;
    ``definition`` (default ``doc``) and ``package`` are what the methods text reports."""

    def deco(fn: Callable[..., float]) -> Callable[..., float]:
        METRICS.register(name, Metric(name, fn, doc, needs_mixture, definition or doc, package, needs_reference), doc=doc)
        return fn

    return deco


def package_version(package: Optional[str]) -> Optional[str]:
    """Installed version of a PyPI distribution (None when ``package`` is None or not installed)."""
    if package is None:
        return None
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def metric_provenance(names: Optional[Sequence[str]] = None, pesq_mode: str = "wb") -> list[dict[str, Any]]:
    """For each metric of ``names`` (one per column, as scored; default: every registered one):
    ``name``, ``column``, ``definition``, ``package`` and its installed ``version`` (None when not
    installed or hand-written), ``needs_reference``, ``needs_mixture`` -- what ``run.json`` and the
    report's methods section record."""
    out = []
    pairs = (_resolve(names, pesq_mode) if names is not None
             else [(METRICS.get(n), METRICS.get(n).column(pesq_mode)) for n in METRICS.names()])
    for m, col in pairs:
        out.append({"name": m.name, "column": col, "definition": m.definition, "package": m.package,
                    "version": package_version(m.package), "needs_reference": m.needs_reference,
                    "needs_mixture": m.needs_mixture})
    return out


def _resolve(names: Sequence[str], pesq_mode: str) -> list[tuple[Metric, str]]:
    """The metrics of ``names`` with their columns, the first of several names with one column kept."""
    seen: set[str] = set()
    out: list[tuple[Metric, str]] = []
    for n in names:
        m = METRICS.get(n)
        col = m.column(pesq_mode)
        if col not in seen:
            seen.add(col)
            out.append((m, col))
    return out


# ---------------------------------------------------------------------------------------------
# scoring


def metric_columns(names: Sequence[str], pesq_mode: str = "wb", *, with_input: bool = True) -> list[str]:
    """The result columns :func:`score_pair` produces for ``names``."""
    cols: list[str] = []
    for _m, c in _resolve(names, pesq_mode):
        cols += [c, f"{c}_error"]
        if with_input:
            cols += [f"input_{c}", f"input_{c}_error", f"delta_{c}"]
    return cols


def _align(ref: np.ndarray, est: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref, dtype=np.float32).reshape(-1)
    est = np.asarray(est, dtype=np.float32).reshape(-1)
    if ref.size != est.size:
        if abs(ref.size - est.size) > MAX_LENGTH_MISMATCH:
            raise MetricError(f"{what} length {est.size} differs from the reference length {ref.size} by more than {MAX_LENGTH_MISMATCH} samples")
        n = min(ref.size, est.size)
        ref, est = ref[:n], est[:n]
    if ref.size == 0:
        raise MetricError("empty signal")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(est))):
        raise MetricError(f"{what} or reference contains NaN/inf")
    return ref, est


def _one(metric: Metric, ref, est, mixture, sr: int, pesq_mode: str, what: str, cache: Optional[dict] = None) -> tuple[float, str]:
    try:
        r, e = _align(ref, est, what)
        if not np.any(e != 0):
            raise MetricError(f"{what} is silent (all zeros)")
        m = None
        if mixture is not None:
            _, m = _align(ref, mixture, "mixture")
            n = min(r.size, m.size)
            r, e, m = r[:n], e[:n], m[:n]
        val = float(metric.fn(r, e, sr=sr, pesq_mode=pesq_mode, mixture=m, cache=cache))
        if math.isnan(val):
            return math.nan, f"{metric.name} returned NaN"
        return val, ""
    except MetricError as exc:
        return math.nan, str(exc)
    except Exception as exc:  # noqa: BLE001 - a metric must never crash the batch
        return math.nan, f"{type(exc).__name__}: {exc}"


def score_input(
    ref: np.ndarray, mixture: np.ndarray, *, names: Sequence[str] = DEFAULT_METRICS, sr: int = 16000, pesq_mode: str = "wb"
) -> dict[str, Any]:
    """The ``input_<col>`` and ``input_<col>_error`` scores of the unprocessed mixture (compute once
    per item and pass to :func:`score_pair` as ``inputs`` when scoring several estimates)."""
    out: dict[str, Any] = {}
    cache: dict = {}
    for metric, col in _resolve(names, pesq_mode):
        out[f"input_{col}"], out[f"input_{col}_error"] = _one(metric, ref, mixture, mixture, sr, pesq_mode, "mixture", cache)
    return out


def score_pair(
    ref: np.ndarray,
    est: np.ndarray,
    mixture: Optional[np.ndarray] = None,
    *,
    names: Sequence[str] = DEFAULT_METRICS,
    sr: int = 16000,
    pesq_mode: str = "wb",
    inputs: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Score one (reference, estimate) pair; with ``mixture`` also input_* and delta_* columns
    (``inputs``: the mixture's scores from :func:`score_input`, reused instead of recomputed)."""
    out: dict[str, Any] = {}
    cache: dict = {}  # shares the [clean, noise] BSS decomposition between sir and sar
    resolved = _resolve(names, pesq_mode)
    for metric, col in resolved:
        out[col], out[f"{col}_error"] = _one(metric, ref, est, mixture, sr, pesq_mode, "estimate", cache)
    if mixture is not None:
        if inputs is None or any(f"input_{col}" not in inputs for _m, col in resolved):
            inputs = score_input(ref, mixture, names=names, sr=sr, pesq_mode=pesq_mode)
        for _m, col in resolved:
            iv = inputs[f"input_{col}"]
            out[f"input_{col}"], out[f"input_{col}_error"] = iv, inputs[f"input_{col}_error"]
            out[f"delta_{col}"] = out[col] - iv if not (math.isnan(iv) or math.isnan(out[col])) else math.nan
    return {c: out[c] for c in metric_columns(names, pesq_mode, with_input=mixture is not None)}


def _load(x: Any, sr: int) -> np.ndarray:
    if x is None or isinstance(x, np.ndarray):
        return x
    from benchmark.audio_io import read_audio

    return read_audio(Path(x), expected_sr=sr, validate=False)


SIGNAL_KEYS = ("ref", "est", "mixture")


def _score_record(rec: dict[str, Any], names: Sequence[str], sr: int, pesq_mode: str) -> dict[str, Any]:
    ids = {k: v for k, v in rec.items() if k not in SIGNAL_KEYS}
    try:
        ref, est = _load(rec["ref"], sr), _load(rec["est"], sr)
        mix = _load(rec.get("mixture"), sr)
    except Exception as exc:  # noqa: BLE001 - unreadable files become NaN rows with a reason
        reason = f"cannot load audio: {exc}"
        scores: dict[str, Any] = {}
        for c in metric_columns(names, pesq_mode, with_input=rec.get("mixture") is not None):
            scores[c] = reason if c.endswith("_error") else math.nan
        return {**ids, **scores}
    return {**ids, **score_pair(ref, est, mix, names=names, sr=sr, pesq_mode=pesq_mode)}


def score_many(
    pairs: Iterable[dict[str, Any]] | pd.DataFrame,
    names: Sequence[str] = DEFAULT_METRICS,
    jobs: int = 1,
    *,
    sr: int = 16000,
    pesq_mode: str = "wb",
    progress: bool = True,
) -> pd.DataFrame:
    """Score many pairs (dicts with ``ref``, ``est``, optional ``mixture``: arrays or file paths,
    plus any id columns, copied through) in ``jobs`` processes; rows in input order."""
    from joblib import Parallel, delayed

    records = pairs.to_dict("records") if isinstance(pairs, pd.DataFrame) else [dict(p) for p in pairs]
    for i, r in enumerate(records):
        missing = [k for k in ("ref", "est") if k not in r]
        if missing:
            raise ValueError(f"pair {i}: missing key(s) {missing} (need ref, est, optional mixture)")
    for n in names:
        METRICS.get(n)  # unknown names fail before any work
    if jobs <= 1 or len(records) <= 1:
        it: Iterable = records
        if progress:
            from tqdm import tqdm

            it = tqdm(records, desc="scoring", unit="pair", disable=len(records) < 2)
        rows = [_score_record(r, names, sr, pesq_mode) for r in it]
    else:
        rows = Parallel(n_jobs=jobs, backend="loky")(delayed(_score_record)(r, names, sr, pesq_mode) for r in records)
    return pd.DataFrame(rows)


# the functions other modules and the tests call by name (their metric modules register them)
from benchmark.metrics.bss_eval import bss_decompose, bss_sdr  # noqa: E402
from benchmark.metrics.sisdr import si_sdr  # noqa: E402
