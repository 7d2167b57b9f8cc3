"""``si_sdr``: scale-invariant signal-to-distortion ratio in dB, written here (no package)."""
from __future__ import annotations

import math

import numpy as np

from benchmark.metrics import MetricError, metric

DEFINITION = ("SI-SDR (Le Roux et al. 2019), computed here: both signals made zero-mean, target = "
              "<est, ref> / ||ref||^2 * ref, SI-SDR = 10 log10(||target||^2 / ||est - target||^2) dB over the "
              "whole utterance; +inf for a perfect estimate.")


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR in dB of 1-D ``est`` against 1-D ``ref`` (zero-mean signals; +inf for a
    perfect estimate)."""
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


@metric("si_sdr", "Scale-invariant SDR in dB (hand-written, zero-mean, Le Roux et al. 2019).", definition=DEFINITION)
def _si_sdr(ref, est, **_):
    return si_sdr(ref, est)
