"""Speech-quality metrics through the standard packages; NaN plus a reason on failure.

Registry :data:`METRICS` (name -> :class:`Metric`); the column of a metric is its name, except
PESQ whose column carries the mode (``pesq_wb`` / ``pesq_nb``):

* ``pesq``: ITU-T P.862 via the ``pesq`` package; wide-band (P.862.2) at 16 kHz by default,
  narrow-band (P.862.1 MOS-LQO) with ``pesq_mode="nb"``.
* ``stoi`` / ``estoi``: short-time objective intelligibility and its extended version
  (``pystoi.stoi(..., extended=False/True)``; pystoi resamples to 10 kHz internally). pystoi's
  "not enough STFT frames" fallback value (1e-5) is reported as NaN with a reason.
* ``si_sdr``: scale-invariant SDR (Le Roux et al. 2019), hand-written: both signals made
  zero-mean, target = <est, ref> / ||ref||^2 * ref, SI-SDR = 10 log10(||target||^2 /
  ||est - target||^2). A perfect estimate gives +inf.
* ``sdr``, ``sir``, ``sar``: BSS Eval source criteria from ``mir_eval.separation``.
  What "the bss_eval settings" mean here, honestly: mir_eval implements **BSS Eval v3**
  (the MATLAB toolbox 3.0 criteria, Vincent et al. 2006) with a 512-tap time-invariant
  distortion filter; we evaluate the whole utterance as one window (no framing) and with
  ``compute_permutation=False`` (the estimate is known to be the speech). BSS Eval v4
  (museval, SiSEC 2018) differs from v3 mainly in computing the distortion filters once per
  track and reporting framewise values; with a single whole-utterance window and one source
  the two use the same projection, but we do not run museval and make no stronger claim.
  ``sdr`` uses the clean speech as the only reference (``bss_eval_sources([clean], [est],
  compute_permutation=False)``). ``sir``/``sar`` need a second reference, the noise
  (``mixture - clean``), so they are only computed when the mixture is given: the estimate is
  decomposed against [clean, noise] with the exact per-source routine ``bss_eval_sources`` runs
  (``_bss_decomp_mtifilt`` + ``_bss_source_crit``, source 0 only; a test checks it against the
  public function).

``score_pair(ref, est, mixture=None, names=...)`` returns ``<col>`` and ``<col>_error`` for
each metric and, with a mixture, ``input_<col>``, ``input_<col>_error`` and ``delta_<col> =
<col> - input_<col>``. A metric that fails (PESQ on silence or on too-short audio, for
example) gives NaN and a reason string, never 0 and never an exception; the reason is ""
when fine. ``score_many`` scores many pairs in parallel processes (joblib), in input order.
"""
from __future__ import annotations

import hashlib
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from benchmark.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("si_sdr", "pesq", "stoi", "estoi", "sdr")
MAX_LENGTH_MISMATCH = 1024  # samples; longer mismatches between reference and estimate are errors
BSS_FILTER_LEN = 512


class MetricError(ValueError):
    """A metric cannot be computed on this input (the message is the reason)."""


@dataclass(frozen=True)
class Metric:
    """A named metric: ``fn(ref, est, *, sr, mixture, pesq_mode) -> float`` (higher is better)."""

    name: str
    fn: Callable[..., float]
    doc: str
    needs_mixture: bool = False

    def column(self, pesq_mode: str = "wb") -> str:
        return f"pesq_{pesq_mode}" if self.name == "pesq" else self.name


# the metrics below plus every module of this package (imported on first lookup): a new metric is
# one new file here that decorates its function with :func:`metric` (``docs/extending.md``)
METRICS: Registry = Registry("metric", package="benchmark.metrics")


def metric(name: str, doc: str, needs_mixture: bool = False) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Register ``fn(ref, est, *, sr, mixture, pesq_mode) -> float`` (higher is better; raise
    :class:`MetricError` with a reason on failure) as metric ``name``, column ``name``."""

    def deco(fn: Callable[..., float]) -> Callable[..., float]:
        METRICS.register(name, Metric(name, fn, doc, needs_mixture), doc=doc)
        return fn

    return deco


# ---------------------------------------------------------------------------------------------
# metric functions (pure; raise MetricError with a reason)


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR in dB (zero-mean signals; +inf for a perfect estimate)."""
    r = np.asarray(ref, dtype=np.float64) - np.mean(ref)
    e = np.asarray(est, dtype=np.float64) - np.mean(est)
    rr, ee = float(np.dot(r, r)), float(np.dot(e, e))
    if rr <= 0:
        raise MetricError("reference is silent (zero energy)")
    if ee <= 0:
        raise MetricError("estimate is silent (zero energy)")
    target = (float(np.dot(e, r)) / rr) * r
    resid = e - target
    num, den = float(np.dot(target, target)), float(np.dot(resid, resid))
    if den == 0.0:
        return math.inf
    if num == 0.0:
        return -math.inf
    return 10.0 * math.log10(num / den)


@metric("si_sdr", "Scale-invariant SDR in dB (hand-written, zero-mean, Le Roux et al. 2019).")
def _si_sdr(ref, est, **_):
    return si_sdr(ref, est)


@metric("pesq", "PESQ (pesq package; wide-band at 16 kHz by default, narrow-band with pesq_mode=nb).")
def _pesq(ref, est, *, sr: int = 16000, pesq_mode: str = "wb", **_):
    from pesq import pesq

    if pesq_mode not in ("wb", "nb"):
        raise MetricError(f"unknown PESQ mode {pesq_mode!r} (wb, nb)")
    if pesq_mode == "wb" and sr != 16000:
        raise MetricError(f"wide-band PESQ needs 16 kHz audio, got {sr} Hz")
    try:
        return float(pesq(sr, np.asarray(ref, np.float32), np.asarray(est, np.float32), pesq_mode))
    except Exception as exc:  # pesq raises NoUtterancesError, BufferTooShortError, ...
        raise MetricError(f"pesq failed: {type(exc).__name__}: {exc}".strip()) from exc


def _stoi(ref, est, sr: int, extended: bool) -> float:
    from pystoi import stoi

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        val = float(stoi(np.asarray(ref, np.float64), np.asarray(est, np.float64), sr, extended=extended))
    msgs = [str(w.message) for w in caught]
    if any("Not enough STFT frames" in m for m in msgs):
        raise MetricError("pystoi: not enough STFT frames (audio too short or silent after VAD)")
    if not np.isfinite(val):
        raise MetricError(f"pystoi returned {val}")
    return val


@metric("stoi", "STOI (pystoi, extended=False).")
def _stoi_m(ref, est, *, sr: int = 16000, **_):
    return _stoi(ref, est, sr, extended=False)


@metric("estoi", "Extended STOI (pystoi, extended=True).")
def _estoi_m(ref, est, *, sr: int = 16000, **_):
    return _stoi(ref, est, sr, extended=True)


def _silence_check(x: np.ndarray, what: str) -> None:
    if not np.any(np.asarray(x) != 0):
        raise MetricError(f"{what} is all zeros (BSS Eval is undefined)")


def bss_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """SDR of one estimate against one reference (mir_eval bss_eval_sources, no permutation)."""
    from mir_eval.separation import bss_eval_sources

    _silence_check(ref, "reference")
    _silence_check(est, "estimate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval 0.8 flags bss_eval_sources as deprecated
        sdr, _sir, _sar, _ = bss_eval_sources(np.asarray(ref, np.float64)[None], np.asarray(est, np.float64)[None],
                                              compute_permutation=False)
    return float(sdr[0])


def bss_decompose(ref: np.ndarray, noise: np.ndarray, est: np.ndarray) -> tuple[float, float, float]:
    """(SDR, SIR, SAR) of ``est`` as the speech source against references [speech, noise]: the
    per-source routine of mir_eval's bss_eval_sources (512-tap filters) for source 0 only."""
    from mir_eval import separation as sep

    _silence_check(ref, "reference")
    _silence_check(noise, "noise reference (mixture - clean)")
    _silence_check(est, "estimate")
    refs = np.stack([np.asarray(ref, np.float64), np.asarray(noise, np.float64)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s_true, e_spat, e_interf, e_artif = sep._bss_decomp_mtifilt(refs, np.asarray(est, np.float64), 0, BSS_FILTER_LEN)
        sdr, sir, sar = sep._bss_source_crit(s_true, e_spat, e_interf, e_artif)
    return float(sdr), float(sir), float(sar)


@metric("sdr", "SDR in dB (mir_eval BSS Eval v3 bss_eval_sources, 512-tap filter, no permutation).")
def _sdr_m(ref, est, **_):
    return bss_sdr(ref, est)


def _bss_pair(ref, est, mixture, cache: Optional[dict], name: str) -> tuple[float, float, float]:
    if mixture is None:
        raise MetricError(f"{name} needs the mixture (noise reference = mixture - clean)")
    key = ("bss", hashlib.sha1(np.ascontiguousarray(est).tobytes()).hexdigest())
    if cache is not None and key in cache:
        return cache[key]
    val = bss_decompose(ref, np.asarray(mixture, np.float64) - np.asarray(ref, np.float64), est)
    if cache is not None:
        cache[key] = val
    return val


@metric("sir", "SIR in dB against [clean, noise] (mir_eval BSS Eval v3; needs the mixture).", needs_mixture=True)
def _sir_m(ref, est, *, mixture=None, cache=None, **_):
    return _bss_pair(ref, est, mixture, cache, "sir")[1]


@metric("sar", "SAR in dB against [clean, noise] (mir_eval BSS Eval v3; needs the mixture).", needs_mixture=True)
def _sar_m(ref, est, *, mixture=None, cache=None, **_):
    return _bss_pair(ref, est, mixture, cache, "sar")[2]


# ---------------------------------------------------------------------------------------------
# scoring


def metric_columns(names: Sequence[str], pesq_mode: str = "wb", *, with_input: bool = True) -> list[str]:
    """The result columns :func:`score_pair` produces for ``names``."""
    cols: list[str] = []
    for n in names:
        c = METRICS.get(n).column(pesq_mode)
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
    for name in names:
        metric = METRICS.get(name)
        col = metric.column(pesq_mode)
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
    for name in names:
        metric = METRICS.get(name)
        col = metric.column(pesq_mode)
        out[col], out[f"{col}_error"] = _one(metric, ref, est, mixture, sr, pesq_mode, "estimate", cache)
    if mixture is not None:
        if inputs is None or any(f"input_{METRICS.get(n).column(pesq_mode)}" not in inputs for n in names):
            inputs = score_input(ref, mixture, names=names, sr=sr, pesq_mode=pesq_mode)
        for name in names:
            col = METRICS.get(name).column(pesq_mode)
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
