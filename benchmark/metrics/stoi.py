"""``stoi`` and ``estoi``: (extended) short-time objective intelligibility through ``pystoi``."""
from __future__ import annotations

import warnings

import numpy as np

from benchmark.metrics import MetricError, metric

PACKAGE = "pystoi"


def stoi_score(ref: np.ndarray, est: np.ndarray, sr: int, extended: bool) -> float:
    """``pystoi.stoi`` (resamples to 10 kHz internally); its "not enough STFT frames" fallback
    value (1e-5) becomes a :class:`MetricError`."""
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


@metric("stoi", "STOI (pystoi, extended=False).", package=PACKAGE,
        definition="STOI (Taal et al. 2011): pystoi.stoi(extended=False), signals resampled to 10 kHz, 30-frame "
                   "(384 ms) segments, silent frames (40 dB below the loudest) removed; 0..1.")
def _stoi_m(ref, est, *, sr: int = 16000, **_):
    return stoi_score(ref, est, sr, extended=False)


@metric("estoi", "Extended STOI (pystoi, extended=True).", package=PACKAGE,
        definition="ESTOI (Jensen & Taal 2016): pystoi.stoi(extended=True), the extended measure (row- and "
                   "column-normalised spectral correlation, sensitive to modulation across bands) on the same "
                   "10 kHz framing as STOI; not STOI.")
def _estoi_m(ref, est, *, sr: int = 16000, **_):
    return stoi_score(ref, est, sr, extended=True)
