"""``sdr``, ``sir``, ``sar``: BSS Eval source criteria from ``mir_eval.separation``.

What "the bss_eval settings" mean here, honestly: mir_eval implements **BSS Eval v3** (the
MATLAB toolbox 3.0 criteria, Vincent et al. 2006) with a 512-tap time-invariant distortion
filter; we evaluate the whole utterance as one window (no framing) and with
``compute_permutation=False`` (the estimate is known to be the speech). BSS Eval v4 (museval,
SiSEC 2018) differs from v3 mainly in computing the distortion filters once per track and
reporting framewise values; with a single whole-utterance window and one source the two use the
same projection, but we do not run museval and make no stronger claim. ``sdr`` uses the clean
speech as the only reference (``bss_eval_sources([clean], [est], compute_permutation=False)``).
``sir``/``sar`` need a second reference, the noise (``mixture - clean``), so they are only
computed when the mixture is given: the estimate is decomposed against [clean, noise] with the
exact per-source routine ``bss_eval_sources`` runs (``_bss_decomp_mtifilt`` +
``_bss_source_crit``, source 0 only; a test checks it against the public function).
"""
from __future__ import annotations

import hashlib
import warnings
from typing import Optional

import numpy as np

from benchmark.metrics import MetricError, metric

PACKAGE = "mir_eval"
BSS_FILTER_LEN = 512
_COMMON = ("BSS Eval v3 as mir_eval.separation implements it (Vincent et al. 2006; 512-tap time-invariant "
           "distortion filter, the whole utterance as one window, no permutation); not museval's v4")


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


@metric("sdr", "SDR in dB (mir_eval BSS Eval v3 bss_eval_sources, 512-tap filter, no permutation).", package=PACKAGE,
        definition=f"SDR in dB against the clean speech as the only reference: {_COMMON}.")
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


@metric("sir", "SIR in dB against [clean, noise] (mir_eval BSS Eval v3; needs the mixture).", needs_mixture=True,
        package=PACKAGE, definition=f"SIR in dB, the estimate decomposed against [clean, mixture - clean]: {_COMMON}.")
def _sir_m(ref, est, *, mixture=None, cache=None, **_):
    return _bss_pair(ref, est, mixture, cache, "sir")[1]


@metric("sar", "SAR in dB against [clean, noise] (mir_eval BSS Eval v3; needs the mixture).", needs_mixture=True,
        package=PACKAGE, definition=f"SAR in dB, the estimate decomposed against [clean, mixture - clean]: {_COMMON}.")
def _sar_m(ref, est, *, mixture=None, cache=None, **_):
    return _bss_pair(ref, est, mixture, cache, "sar")[2]
