"""``pesq_wb``, ``pesq_nb`` and the legacy ``pesq``: ITU-T P.862 through the ``pesq`` package.

What the columns hold, exactly: the ``pesq`` package (ludlows/PESQ, the ITU reference C code)
returns only the *mapped* score, MOS-LQO, in both modes: wide-band is P.862.2
(``0.999 + 4 / (1 + exp(-1.3669 d + 3.8224))`` of the raw score d), narrow-band is the P.862.1
mapping (``0.999 + 4 / (1 + exp(-1.4945 d + 4.6607))``), not the raw P.862 score (range -0.5..4.5)
that older papers quote as "PESQ". Both are computed on the 16 kHz signals (narrow-band P.862
accepts 16 kHz input and applies its own 8 kHz-band input filter).
"""
from __future__ import annotations

import numpy as np

from benchmark.metrics import MetricError, metric

PACKAGE = "pesq"
DEFINITIONS = {
    "wb": "PESQ wide-band, ITU-T P.862.2 MOS-LQO (pesq package, mode 'wb', 16 kHz).",
    "nb": "PESQ narrow-band, ITU-T P.862 raw score mapped to MOS-LQO by P.862.1 (pesq package, mode 'nb', "
          "16 kHz input); not the raw P.862 score.",
}


def pesq_score(ref: np.ndarray, est: np.ndarray, sr: int, mode: str) -> float:
    """MOS-LQO of ``est`` against ``ref`` in ``mode`` ``wb``/``nb`` (a :class:`MetricError` with the
    package's reason when it fails, e.g. no utterances detected, buffer too short)."""
    from pesq import pesq

    if mode not in ("wb", "nb"):
        raise MetricError(f"unknown PESQ mode {mode!r} (wb, nb)")
    if mode == "wb" and sr != 16000:
        raise MetricError(f"wide-band PESQ needs 16 kHz audio, got {sr} Hz")
    try:
        return float(pesq(sr, np.asarray(ref, np.float32), np.asarray(est, np.float32), mode))
    except Exception as exc:  # pesq raises NoUtterancesError, BufferTooShortError, ...
        raise MetricError(f"pesq failed: {type(exc).__name__}: {exc}".strip()) from exc


@metric("pesq_wb", "PESQ wide-band (P.862.2 MOS-LQO, pesq package).", definition=DEFINITIONS["wb"], package=PACKAGE)
def _pesq_wb(ref, est, *, sr: int = 16000, **_):
    return pesq_score(ref, est, sr, "wb")


@metric("pesq_nb", "PESQ narrow-band (P.862 mapped to MOS-LQO by P.862.1, pesq package).", definition=DEFINITIONS["nb"],
        package=PACKAGE)
def _pesq_nb(ref, est, *, sr: int = 16000, **_):
    return pesq_score(ref, est, sr, "nb")


@metric("pesq", "PESQ in the mode metrics.pesq_mode (column pesq_wb or pesq_nb; older presets).",
        definition="PESQ in the mode of metrics.pesq_mode: " + " / ".join(DEFINITIONS.values()), package=PACKAGE)
def _pesq(ref, est, *, sr: int = 16000, pesq_mode: str = "wb", **_):
    return pesq_score(ref, est, sr, pesq_mode)
